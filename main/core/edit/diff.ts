/**
 * Label-map changes as data: what one edit (a brush stroke, a fill, an undo) did to a label map,
 * stored as runs of consecutive voxel indices that went from one label to another. The same bytes
 * are the undo history's entries (editing engine, renderer) and the wire format that carries
 * edits to the service (api.ts `editLabels`), so the two cannot disagree.
 *
 * Encoding: a sequence of runs, each `varint gap · varint length · u8 before · u8 after`, where
 * `gap` counts the voxels between the end of the previous run (0 at the start) and this run's
 * first voxel. A stroke of a 20 mm brush over a 1 mm grid changes a few hundred voxels per slice
 * row in runs of ~20, so a change costs about a quarter byte per voxel; the worst case (isolated
 * voxels, e.g. a threshold brush over noise) is ~4 bytes per voxel.
 *
 * Pure TypeScript, no Node or DOM: imported by the renderer and the core alike.
 */

export interface DiffSummary {
  /** voxels changed */
  voxels: number;
  /** the axial slices (third index) holding changed voxels, ascending */
  axialSlices: number[];
  /** per label value: how many voxels it gained (negative: lost) */
  labelDelta: Map<number, number>;
}

/** Thrown when a change does not fit the label map it is applied to (another grid, or out of sync). */
export class DiffMismatchError extends Error {
  override name = 'DiffMismatchError';
}

class ByteWriter {
  bytes = new Uint8Array(1024);
  length = 0;
  #grow(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
  }
  varint(value: number): void {
    this.#grow(8);
    // values stay below 2^32 (voxel counts); division keeps it exact past 2^31
    while (value >= 0x80) {
      this.bytes[this.length++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.bytes[this.length++] = value;
  }
  byte(value: number): void {
    this.#grow(1);
    this.bytes[this.length++] = value;
  }
  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

export interface Run {
  start: number;
  length: number;
  before: number;
  after: number;
}

/** The runs of an encoded change, in index order; throws a DiffMismatchError on malformed bytes. */
export function* runsOf(bytes: Uint8Array): Generator<Run> {
  let at = 0;
  let position = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 6; i++) {
      if (at >= bytes.length) throw new DiffMismatchError('a change ends in the middle of a run');
      const b = bytes[at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw new DiffMismatchError('a change holds an over-long number');
  };
  while (at < bytes.length) {
    const gap = varint();
    const length = varint();
    if (at + 2 > bytes.length) throw new DiffMismatchError('a change ends in the middle of a run');
    const before = bytes[at++]!;
    const after = bytes[at++]!;
    if (length === 0) throw new DiffMismatchError('a change holds an empty run');
    const start = position + gap;
    position = start + length;
    yield { start, length, before, after };
  }
}

/** Encodes runs given in index order (adjacent runs with the same labels are merged). */
export function encodeRuns(runs: Iterable<Run>): Uint8Array {
  const out = new ByteWriter();
  let position = 0;
  let pending: Run | null = null;
  const flush = (run: Run): void => {
    out.varint(run.start - position);
    out.varint(run.length);
    out.byte(run.before);
    out.byte(run.after);
    position = run.start + run.length;
  };
  for (const run of runs) {
    if (pending && pending.start + pending.length === run.start && pending.before === run.before && pending.after === run.after) {
      pending.length += run.length;
      continue;
    }
    if (pending) flush(pending);
    pending = { ...run };
  }
  if (pending) flush(pending);
  return out.finish();
}

/** The change that undoes `bytes`. */
export function invertDiff(bytes: Uint8Array): Uint8Array {
  const runs: Run[] = [];
  for (const run of runsOf(bytes)) runs.push({ ...run, before: run.after, after: run.before });
  return encodeRuns(runs);
}

/**
 * Applies a change to `labels`: every voxel of a run must hold its `before` label, then takes its
 * `after` label. Checked first, written second: a change that does not fit (another grid, out of
 * sync) throws a DiffMismatchError and leaves `labels` as they were.
 */
export function applyDiff(labels: Uint8Array, bytes: Uint8Array): void {
  for (const run of runsOf(bytes)) {
    if (run.start + run.length > labels.length) throw new DiffMismatchError(`a change reaches voxel ${run.start + run.length - 1}, the label map has ${labels.length}`);
    for (let i = run.start; i < run.start + run.length; i++) {
      if (labels[i] !== run.before) throw new DiffMismatchError(`voxel ${i} holds label ${labels[i]}, the change expects ${run.before}`);
    }
  }
  for (const run of runsOf(bytes)) labels.fill(run.after, run.start, run.start + run.length);
}

/** What a change touches, for the views, the sync with the service and the live volumes. */
export function summarizeDiff(bytes: Uint8Array, dims: readonly number[]): DiffSummary {
  const plane = dims[0]! * dims[1]!;
  const slices = new Set<number>();
  const labelDelta = new Map<number, number>();
  let voxels = 0;
  for (const run of runsOf(bytes)) {
    voxels += run.length;
    labelDelta.set(run.before, (labelDelta.get(run.before) ?? 0) - run.length);
    labelDelta.set(run.after, (labelDelta.get(run.after) ?? 0) + run.length);
    const first = Math.floor(run.start / plane);
    const last = Math.floor((run.start + run.length - 1) / plane);
    for (let k = first; k <= last; k++) slices.add(k);
  }
  return { voxels, axialSlices: [...slices].sort((a, b) => a - b), labelDelta };
}

/**
 * Records what an edit does while it runs: the label each voxel had before the edit first touched
 * it. `finish` turns that into an encoded change (voxels that came back to their first label, as
 * when a stroke crosses its own path with the eraser, are not part of it). One recorder serves
 * one label map and is reused: its marks are cleared as each edit finishes.
 */
export class ChangeRecorder {
  readonly #touched: Uint8Array;
  /** index · 256 + label before, for each touched voxel (exact in float64 for any grid below 2^44 voxels) */
  #keys = new Float64Array(4096);
  #count = 0;

  constructor(voxels: number) {
    this.#touched = new Uint8Array(voxels);
  }

  /** Sets voxel `i` of `labels` to `value`, remembering its first label. */
  set(labels: Uint8Array, i: number, value: number): void {
    const old = labels[i]!;
    if (old === value) return;
    if (!this.#touched[i]) {
      this.#touched[i] = 1;
      if (this.#count === this.#keys.length) {
        const bigger = new Float64Array(this.#keys.length * 2);
        bigger.set(this.#keys);
        this.#keys = bigger;
      }
      this.#keys[this.#count++] = i * 256 + old;
    }
    labels[i] = value;
  }

  /** Voxels touched since the last finish. */
  get touched(): number {
    return this.#count;
  }

  /** The change since the last finish, or null when nothing changed; clears the marks. */
  finish(labels: Uint8Array): Uint8Array | null {
    const keys = this.#keys.subarray(0, this.#count);
    keys.sort();
    const runs: Run[] = [];
    for (const key of keys) {
      const i = Math.floor(key / 256);
      const before = key - i * 256;
      this.#touched[i] = 0;
      const after = labels[i]!;
      if (after === before) continue;
      runs.push({ start: i, length: 1, before, after });
    }
    this.#count = 0;
    if (this.#keys.length > 1 << 20) this.#keys = new Float64Array(4096);
    return runs.length ? encodeRuns(runs) : null;
  }

  /** Puts every touched voxel back to its first label and forgets the edit (a cancelled stroke). */
  revert(labels: Uint8Array): void {
    for (let n = 0; n < this.#count; n++) {
      const key = this.#keys[n]!;
      const i = Math.floor(key / 256);
      labels[i] = key - i * 256;
      this.#touched[i] = 0;
    }
    this.#count = 0;
  }
}
