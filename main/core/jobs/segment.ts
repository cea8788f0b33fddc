/**
 * The segmentation job: a study in, one label map slice at a time out, as soon as each slice is
 * computed, then the assembled label volume and a summary.
 *
 * Pipeline: while the model (its own worker thread) runs batch b, the main thread prepares batch
 * b+1; when b returns, b+1 starts at once and only then are b's slices post-processed and
 * emitted. The first batch holds one slice so that the first result arrives after one slice's
 * latency; later batches grow (doubling) up to `batchSize`. All-zero input slices never reach the
 * model: they are reported as empty, with an all-zero mask. Slices are emitted in index order.
 */
import { CancelledError, UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import { labelBytes, type Volume } from '../io/volume.ts';
import { type RegionResults, type RegionSummary, evaluateVolume, evaluateSlice, summarise } from '../metrics/evaluate.ts';
import { type RegionKind, regionsFor } from '../metrics/regions.ts';
import { composeLabels, inputChannels, isEmptySlice, outChannelsFor, prepareSlices, volumeIntensityScaling } from '../model/preprocess.ts';
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
  /** the input slice was all zero: the model did not run on it */
  empty?: true;
}

export interface SegmentStart {
  slices: number;
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
}

export interface SegmentSummary {
  case: string;
  slices: number;
  emptySlices: number;
  provider: string;
  regions: RegionKind;
  /** wall time of the whole job */
  ms: number;
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
 * within the noise at best, worse under contention. Batch 1 also gives each streamed slice the
 * lowest latency. Accelerators get batches of 4.
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

  const toRun: number[] = [];
  for (let k = 0; k < nz; k++) if (!isEmptySlice(channels, k)) toRun.push(k);
  const plan = batchPlan(toRun.length, maxBatch);
  events.start?.({ slices: nz, emptySlices: nz - toRun.length, provider: model.provider, regions });

  const labels = new Uint8Array(plane * nz);
  const perSlice: { slice: number; metrics: RegionResults }[] = [];
  const score = (mask: Uint8Array, k: number): RegionResults | null => {
    if (!truth) return null;
    const metrics = evaluateSlice(mask, truth.subarray(k * plane, (k + 1) * plane), [nx, ny], spacing, regionList, { hd95: false });
    perSlice.push({ slice: k, metrics });
    return metrics;
  };
  const scratch = new Float32Array(plane);
  let nextToEmit = 0;

  const emit = (result: SliceResult) => {
    // a listener may cancel from inside its slice callback: no slice reaches it after that
    throwIfAborted();
    labels.set(result.mask, result.index * plane);
    events.slice?.(result);
  };
  const emitEmptyUpTo = (end: number) => {
    for (; nextToEmit < end; nextToEmit++) {
      const mask = new Uint8Array(plane);
      emit({ index: nextToEmit, mask, regions: score(mask, nextToEmit), ms: 0, empty: true });
    }
  };

  interface Prepared {
    indices: number[];
    input: Float32Array;
    ms: number;
  }
  let offset = 0;
  const prepare = (b: number): Prepared => {
    const t0 = performance.now();
    const indices = toRun.slice(offset, offset + plan[b]!);
    offset += indices.length;
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
    emitEmptyUpTo(toRun[0] ?? nz);
    if (plan.length > 0) {
      let current = prepare(0);
      let runStart = performance.now();
      running = model.run(current.input, current.indices.length);
      for (let b = 0; b < plan.length; b++) {
        const next = b + 1 < plan.length ? prepare(b + 1) : undefined;
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
          emitEmptyUpTo(index);
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
          nextToEmit = index + 1;
        }
      }
    }
    emitEmptyUpTo(nz);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // a batch still in the worker when we stop (cancel, error) must not become an unhandled rejection
    running?.catch(() => undefined);
  }

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
      emptySlices: nz - toRun.length,
      provider: model.provider,
      regions,
      ms: performance.now() - started,
      msPerSlice: toRun.length ? modelMs / toRun.length : 0,
      batches: plan,
      metrics,
      sliceSummary,
      perSlice,
      postprocessing,
    },
  };
}
