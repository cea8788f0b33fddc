/**
 * The edits of one open study's prediction layer: the undo history (core/edit/history.ts, steps
 * stored as changes), the live label volumes, the slices edited per view axis (what interpolation
 * fills between), whether there are edits not yet saved as reviewed, and the queue that carries
 * every change to the service (api.ts editLabels) in order, so exports, Save as reviewed and the
 * tumour description see what is on screen.
 */
import type { ClientApi } from '../../../main/core/api.ts';
import { ChangeRecorder, summarizeDiff, type DiffSummary } from '../../../main/core/edit/diff.ts';
import { EditHistory } from '../../../main/core/edit/history.ts';
import { labelCounts, type Axis } from '../../../main/core/edit/ops.ts';

/** A WebSocket message is at most 4 MB (web/websocket.ts): changes go in batches well below that. */
const MAX_BATCH_BYTES = 3 * 1024 * 1024;

export interface EditedSlice {
  axis: Axis;
  slice: number;
  label: number;
}

export class LabelEdits {
  readonly history = new EditHistory();
  /** voxel count per label value of the prediction layer */
  counts = $state.raw<Float64Array>(new Float64Array(256));
  /** edits since the layer was made, loaded or saved as reviewed */
  dirty = $state(false);
  undoSteps = $state(0);
  redoSteps = $state(0);
  historyBytes = $state(0);
  nextUndo = $state<string | null>(null);
  nextRedo = $state<string | null>(null);
  /** bumps whenever the service has taken more edits (the tumour description is then redone) */
  revision = $state(0);
  syncError = $state<string | null>(null);
  /** slices drawn on, latest last, for interpolation */
  edited: EditedSlice[] = [];
  #recorder: ChangeRecorder | null = null;
  #pending: Uint8Array[] = [];
  #sending: Promise<void> | null = null;

  /** The recorder of this layer's edits (one per layer: it keeps a mark per voxel). */
  recorder(voxels: number): ChangeRecorder {
    if (!this.#recorder) this.#recorder = new ChangeRecorder(voxels);
    return this.#recorder;
  }

  /** A new layer (segmentation, loaded mask): no history, counts from its labels, nothing unsaved. */
  reset(labels: Uint8Array | null): void {
    // made now, not on the first stroke: its 1 byte per voxel would delay the first dab
    if (labels) this.recorder(labels.length);
    this.history.clear();
    this.#pending = [];
    this.edited = [];
    this.syncError = null;
    this.dirty = false;
    this.counts = labels ? labelCounts(labels) : new Float64Array(256);
    this.#mirror();
  }

  #mirror(): void {
    this.undoSteps = this.history.undoSteps;
    this.redoSteps = this.history.redoSteps;
    this.historyBytes = this.history.bytes;
    this.nextUndo = this.history.nextUndo;
    this.nextRedo = this.history.nextRedo;
  }

  /** Takes note of a change made to the layer (by an edit, an undo or a redo) and sends it on. */
  changed(change: Uint8Array, dims: readonly number[], api: ClientApi, studyId: string): DiffSummary {
    const summary = summarizeDiff(change, dims);
    const counts = this.counts.slice();
    for (const [label, delta] of summary.labelDelta) counts[label]! += delta;
    this.counts = counts;
    this.dirty = true;
    this.#mirror();
    this.#pending.push(change);
    void this.#send(api, studyId);
    return summary;
  }

  /** Resolves when every change so far has reached the service (rejects with why not). */
  async settled(api: ClientApi, studyId: string): Promise<void> {
    while (!this.syncError && (this.#sending || this.#pending.length)) await (this.#sending ?? this.#send(api, studyId));
    if (this.syncError) throw new Error(this.syncError);
  }

  #send(api: ClientApi, studyId: string): Promise<void> {
    this.#sending ??= (async () => {
      try {
        while (this.#pending.length && !this.syncError) {
          const batch: Uint8Array[] = [];
          let bytes = 0;
          while (this.#pending.length && (batch.length === 0 || bytes + this.#pending[0]!.byteLength < MAX_BATCH_BYTES)) {
            const next = this.#pending.shift()!;
            bytes += next.byteLength;
            batch.push(next);
          }
          try {
            await api.editLabels({ studyId, changes: batch });
            this.revision++;
          } catch (err) {
            this.#pending.unshift(...batch);
            this.syncError = `the edits could not reach the server: ${err instanceof Error ? err.message : String(err)}`;
          }
        }
      } finally {
        this.#sending = null;
      }
    })();
    return this.#sending;
  }

  /** After Save as reviewed: the layer as it is now is the saved one. */
  saved(): void {
    this.dirty = false;
  }

  /** A step of the history was undone or redone, or an edit recorded: the mirrors follow. */
  noteHistory(): void {
    this.#mirror();
  }
}
