/**
 * The segmentation job: a study in, one label map slice at a time out, as soon as each slice is
 * computed, then the assembled label volume and a summary.
 *
 * Pipeline: while the model (its own worker thread) runs batch b, the main thread prepares batch
 * b+1; when b returns, b+1 starts at once and only then are b's slices post-processed and
 * emitted. The first batch holds one slice so that the first result arrives after one slice's
 * latency; later batches grow (doubling) up to `batchSize`. Slices outside the head
 * (preprocess.ts outsideHead) never reach the model: they are reported as empty, with an
 * all-zero mask.
 *
 * Order: index order by default (the command line); with a `focus` (the app: the slice on
 * screen), the slice in focus first and then outward, k, k+1, k−1, k+2, …, following the focus
 * when it moves: each batch takes the slices nearest to the focus at the time it is prepared.
 */
import { CancelledError, UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import { labelBytes, type Volume } from '../io/volume.ts';
import { type RegionResults, type RegionSummary, evaluateVolume, evaluateSlice, summarise } from '../metrics/evaluate.ts';
import { type RegionKind, regionsFor } from '../metrics/regions.ts';
import { composeLabels, inputChannels, outChannelsFor, outsideHead, prepareSlices, volumeIntensityScaling } from '../model/preprocess.ts';
import { POSTPROCESS_DEFAULTS, postprocessLabels, type PostprocessOptions, type PostprocessRecord } from '../model/postprocess.ts';
import type { SliceModel } from './slice-model.ts';

export interface SliceResult {
  index: number;
  /** label values of axial slice `index`, x fastest; a buffer of its own (transferable) */
  mask: Uint8Array;
  /**
   * per-region overlap (Dice, IoU, sensitivity, specificity, counts; no HD95) against ground
   * truth, when there is ground truth; the metrics module's empty rules apply
   */
  regions: RegionResults | null;
  /** this slice's share of preparation, model and post-processing time */
  ms: number;
  /** the slice is outside the head (preprocess.ts outsideHead): the model did not run on it */
  empty?: true;
}

export interface SegmentStart {
  slices: number;
  /** slices outside the head, not run */
  emptySlices: number;
  provider: string;
  regions: RegionKind;
}

export interface SegmentEvents {
  start?(info: SegmentStart): void;
  slice?(result: SliceResult): void;
}

export interface SegmentOptions {
  /** sequences used as the three input channels (see inputChannels) */
  channels?: readonly string[];
  /** how the model's channels are read; default from the model: 3 → brats, 1 → binary */
  regions?: RegionKind;
  /** largest batch; default defaultBatchSize(model.provider) */
  batchSize?: number;
  /** ground truth; default the study's seg; null ignores it */
  groundTruth?: Volume | null;
  threshold?: number;
  /**
   * 3D post-processing of the assembled label map (model/postprocess.ts; default
   * POSTPROCESS_DEFAULTS, thresholds 0 switch it off). Streamed slices are the raw prediction;
   * the returned labels, volume and per-slice metrics are the post-processed ones.
   */
  postprocess?: PostprocessOptions;
  /**
   * whole-volume metrics (HD95 included) at the end, when there is ground truth (default true);
   * false when the caller computes them anyway (the report builder does)
   */
  volumeMetrics?: boolean;
  signal?: AbortSignal;
  /** the slice to do first, then outward from it; it may move while the job runs (default: index order) */
  focus?: SliceFocus;
}

/**
 * The slice the user looks at, shared between whoever moves it (the app's axial view, through
 * the job's control channel) and the running job, which reads it each time it picks a batch.
 */
export class SliceFocus {
  #index: number;

  constructor(index: number) {
    this.#index = SliceFocus.check(index);
  }

  static check(index: number): number {
    if (!Number.isInteger(index) || index < 0) throw new UserError(`the slice in focus must be an index ≥ 0, got ${index}`);
    return index;
  }

  get index(): number {
    return this.#index;
  }

  set index(index: number) {
    this.#index = SliceFocus.check(index);
  }
}

/**
 * Where slice k comes in the order around `focus`: k itself 0, then k+1, k−1, k+2, k−2, … (1, 2,
 * 3, 4, …); in index order without a focus.
 */
export function focusRank(k: number, focus: number | undefined): number {
  if (focus === undefined) return k;
  const d = k - focus;
  return d > 0 ? 2 * d - 1 : d < 0 ? -2 * d : 0;
}

export interface SegmentSummary {
  case: string;
  slices: number;
  emptySlices: number;
  provider: string;
  regions: RegionKind;
  /** wall time of the whole job */
  ms: number;
  /** from the start to the first slice emitted (the one in focus, or the first in index order) */
  firstSliceMs: number;
  /** mean model-slice time over the non-empty slices */
  msPerSlice: number;
  batches: number[];
  /** whole-volume metrics per region (with HD95), when there is ground truth and volumeMetrics is on */
  metrics: RegionResults | null;
  /** per-region means over the slices (and the official mDice/mIoU), when there is ground truth */
  sliceSummary: Record<string, RegionSummary> | null;
  /** every slice's metrics (the report's per-slice table), empty without ground truth */
  perSlice: { slice: number; metrics: RegionResults }[];
  /** what 3D post-processing was applied and what it changed */
  postprocessing: PostprocessRecord;
}

export interface SegmentOutcome {
  labels: Volume;
  summary: SegmentSummary;
}

/**
 * Batching does not pay on a CPU. On this project's 2-core test machine (shared; hiera_t at
 * 352×352, test/bench/segment.bench.ts) a slice took 2.5 / 3.0 / 3.9 s at batch 1 / 2 / 4 under a
 * load average of 17, and 0.50–0.53 / 0.45–0.57 / 0.46–0.63 s over three rounds at a load of 6:
 * within the noise at best, worse under contention. int8 graphs (issue 19) do not change that: the
 * CPU time per slice of hiera_t at batch 1 / 2 / 4 was 262 / 262 / 282 ms (float32 489 / 507 /
 * 516 ms). Batch 1 also gives each streamed slice the lowest latency. Accelerators get batches of 4.
 */
export function defaultBatchSize(provider: string): number {
  return provider === 'cpu' ? 1 : 4;
}

/** Batch sizes 1, 2, 4, … capped at `max`, covering `count` slices. */
export function batchPlan(count: number, max: number): number[] {
  const plan: number[] = [];
  let size = 1;
  for (let done = 0; done < count; ) {
    const n = Math.min(size, max, count - done);
    plan.push(n);
    done += n;
    size *= 2;
  }
  return plan;
}

export async function segmentStudy(study: Study, model: SliceModel, opts: SegmentOptions = {}, events: SegmentEvents = {}): Promise<SegmentOutcome> {
  const started = performance.now();
  const { signal } = opts;
  const throwIfAborted = () => {
    if (signal?.aborted) throw new CancelledError();
  };
  throwIfAborted();
  const regions = opts.regions ?? (model.outChannels === 3 ? 'brats' : model.outChannels === 1 ? 'binary' : undefined);
  if (!regions) throw new UserError(`the model has ${model.outChannels} output channels; only 1 (binary) or 3 (BraTS regions) are supported`);
  if (model.outChannels !== outChannelsFor(regions)) {
    throw new UserError(`the model has ${model.outChannels} output channel${model.outChannels === 1 ? '' : 's'}; ${regions} regions need ${outChannelsFor(regions)}`);
  }
  const maxBatch = Math.max(1, Math.floor(opts.batchSize ?? defaultBatchSize(model.provider)));
  const channels = inputChannels(study, opts.channels);
  const reference = channels[0];
  const [nx, ny, nz] = reference.dims;
  const plane = nx * ny;
  const truthVolume = opts.groundTruth === undefined ? study.seg : opts.groundTruth ?? undefined;
  if (truthVolume && truthVolume.dims.some((d, i) => d !== reference.dims[i])) {
    throw new UserError(`ground truth ${truthVolume.meta.id} is ${truthVolume.dims.join('×')}, the study is ${reference.dims.join('×')}`);
  }
  const truth = truthVolume ? labelBytes(truthVolume) : undefined;
  const regionList = regionsFor(regions);
  const { spacing } = reference.geometry;
  const [h, w] = model.inputSize;
  channels.forEach((v) => volumeIntensityScaling(v));

  // outside the head or not, decided when first needed: the slice in focus goes to the model before
  // the rest of the study is looked at (that happens while the model runs)
  const skipState = new Int8Array(nz).fill(-1);
  const skipped = (k: number): boolean => {
    if (skipState[k]! < 0) skipState[k] = outsideHead(channels, k) ? 1 : 0;
    return skipState[k] === 1;
  };
  let plan: number[] = [];
  let runnable = 0;
  const surveyStudy = () => {
    for (let k = 0; k < nz; k++) if (!skipped(k)) runnable++;
    plan = batchPlan(runnable, maxBatch);
    events.start?.({ slices: nz, emptySlices: nz - runnable, provider: model.provider, regions });
  };
  const focusAt = (): number | undefined => (opts.focus ? Math.min(opts.focus.index, nz - 1) : undefined);

  const labels = new Uint8Array(plane * nz);
  const perSlice: { slice: number; metrics: RegionResults }[] = [];
  const score = (mask: Uint8Array, k: number): RegionResults | null => {
    if (!truth) return null;
    const metrics = evaluateSlice(mask, truth.subarray(k * plane, (k + 1) * plane), [nx, ny], spacing, regionList, { hd95: false });
    perSlice.push({ slice: k, metrics });
    return metrics;
  };
  const scratch = new Float32Array(plane);
  /** 1 once a slice is taken into a batch (or emitted, for skipped slices) */
  const taken = new Uint8Array(nz);
  let firstSliceMs: number | undefined;

  const emit = (result: SliceResult) => {
    // a listener may cancel from inside its slice callback: no slice reaches it after that
    throwIfAborted();
    firstSliceMs ??= performance.now() - started;
    labels.set(result.mask, result.index * plane);
    events.slice?.(result);
  };
  const emitSkipped = (k: number) => {
    taken[k] = 1;
    const mask = new Uint8Array(plane);
    emit({ index: k, mask, regions: score(mask, k), ms: 0, empty: true });
  };
  /** skipped slices that come before slice k in the order around the focus now (all of them without k) */
  const emitSkippedBefore = (k?: number) => {
    const focus = focusAt();
    const limit = k === undefined ? Infinity : focusRank(k, focus);
    const due: number[] = [];
    for (let j = 0; j < nz; j++) if (!taken[j] && focusRank(j, focus) < limit && skipped(j)) due.push(j);
    due.sort((a, b) => focusRank(a, focus) - focusRank(b, focus));
    for (const j of due) emitSkipped(j);
  };
  /** the `count` runnable slices nearest to the focus (in index order without one) not taken yet */
  const pick = (count: number): number[] => {
    const focus = focusAt();
    const free: number[] = [];
    for (let k = 0; k < nz; k++) if (!taken[k]) free.push(k);
    free.sort((a, b) => focusRank(a, focus) - focusRank(b, focus));
    const chosen: number[] = [];
    for (const k of free) {
      if (chosen.length === count) break;
      if (!skipped(k)) chosen.push(k);
    }
    for (const k of chosen) taken[k] = 1;
    return chosen;
  };

  interface Prepared {
    indices: number[];
    input: Float32Array;
    ms: number;
  }
  const prepare = (size: number): Prepared => {
    const t0 = performance.now();
    const indices = pick(size);
    const input = prepareSlices(channels, indices, { size: [h, w] });
    return { indices, input, ms: performance.now() - t0 };
  };

  // a cancelled job stops waiting at once; the batch already in the worker finishes there
  let abortReject: ((err: unknown) => void) | undefined;
  const aborted = new Promise<never>((_, reject) => (abortReject = reject));
  aborted.catch(() => undefined);
  const onAbort = () => abortReject?.(new CancelledError());
  signal?.addEventListener('abort', onAbort, { once: true });

  let modelMs = 0;
  let running: Promise<Float32Array> | undefined;
  try {
    let current = prepare(1);
    if (current.indices.length === 0) surveyStudy();
    else {
      let runStart = performance.now();
      running = model.run(current.input, current.indices.length);
      surveyStudy();
      for (let b = 0; b < plan.length; b++) {
        const next = b + 1 < plan.length ? prepare(plan[b + 1]!) : undefined;
        const logits = await Promise.race([running, aborted]);
        const runMs = performance.now() - runStart;
        modelMs += runMs;
        throwIfAborted();
        const done = current;
        if (next) {
          current = next;
          runStart = performance.now();
          running = model.run(next.input, next.indices.length);
        }
        const share = (done.ms + runMs) / done.indices.length;
        const C = model.outChannels;
        for (let i = 0; i < done.indices.length; i++) {
          const index = done.indices[i]!;
          emitSkippedBefore(index);
          const t0 = performance.now();
          const mask = composeLabels(logits.subarray(i * C * h * w, (i + 1) * C * h * w), {
            channels: C,
            size: [h, w],
            sliceSize: [ny, nx],
            regions,
            threshold: opts.threshold,
            scratch,
          });
          emit({ index, mask, regions: score(mask, index), ms: share + performance.now() - t0 });
        }
      }
    }
    emitSkippedBefore();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // a batch still in the worker when we stop (cancel, error) must not become an unhandled rejection
    running?.catch(() => undefined);
  }
  perSlice.sort((a, b) => a.slice - b.slice);

  const postprocessing = postprocessLabels(labels, [nx, ny, nz], spacing, regions, opts.postprocess ?? POSTPROCESS_DEFAULTS);
  if (truth && postprocessing.changedSlices.length) {
    const changed = new Set(postprocessing.changedSlices);
    for (const entry of perSlice) {
      if (!changed.has(entry.slice)) continue;
      const k = entry.slice;
      entry.metrics = evaluateSlice(labels.subarray(k * plane, (k + 1) * plane), truth.subarray(k * plane, (k + 1) * plane), [nx, ny], spacing, regionList, { hd95: false });
    }
  }
  const metrics = truth && opts.volumeMetrics !== false ? evaluateVolume(labels, truth, [nx, ny, nz], spacing, regionList) : null;
  const sliceSummary = truth ? summarise(perSlice.map((s) => s.metrics), regionList) : null;
  const labelVolume = reference.withData(labels, {
    id: `${study.name}_pred`,
    description: `SAM2-UNet prediction (${regions})`,
    modality: 'SEG',
    sources: [],
  });
  return {
    labels: labelVolume,
    summary: {
      case: study.name,
      slices: nz,
      emptySlices: nz - runnable,
      provider: model.provider,
      regions,
      ms: performance.now() - started,
      firstSliceMs: firstSliceMs ?? 0,
      msPerSlice: runnable ? modelMs / runnable : 0,
      batches: plan,
      metrics,
      sliceSummary,
      perSlice,
      postprocessing,
    },
  };
}
