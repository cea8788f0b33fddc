/**
 * Training data: labelled studies → slices, the sampling plan of each epoch and batches with the
 * official augmentation. Inputs are prepared by the same code as inference (preprocess.ts), so a
 * model sees exactly what it was trained on.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { FileError, UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import { Volume } from '../io/volume.ts';
import { regionLookup, regionsFor, type RegionKind } from '../metrics/regions.ts';
import { resizeBicubic } from '../model/hiera.ts';
import { flipPlanes, headAreaMm2, inputChannels, isEmptySlice, prepareSlices, seedIntensityScaling, volumeIntensityScaling } from '../model/preprocess.ts';
import { formatBytes } from '../util/limits.ts';
import { rngAt, shuffleInPlace } from '../util/random.ts';
import { EDGE_SLICE_AREA } from './defaults.ts';

export interface TrainingStudy {
  study: Study;
  channels: readonly [Volume, Volume, Volume];
  seg: Volume;
  /** axial slices holding tumour */
  tumourSlices: number[];
  /** axial slices with brain but no tumour */
  emptySlices: number[];
  /**
   * those of `emptySlices` where the head is a thin patch (`EDGE_SLICE_AREA` of its largest
   * section): the vertex, the skull base. Found only for a run that draws from them (`edgeShare`):
   * the head areas take about 0.15 s a study, a minute of start-up for a 378-study run; else empty.
   */
  edgeSlices: number[];
  /**
   * Set when the volumes hold only the slices the run draws (see DataOptions.draws): axial slice
   * k of the study is stored at index `stored.get(k)`. Read slices through `storedSlice`.
   */
  stored?: ReadonlyMap<number, number>;
}

/** Where axial slice `k` of a training study is held in its (possibly slice-only) volumes. */
export function storedSlice(s: TrainingStudy, k: number): number {
  if (!s.stored) return k;
  const index = s.stored.get(k);
  if (index === undefined) throw new RangeError(`slice ${k} of ${s.study.name} is not one the run draws, so it was not kept`);
  return index;
}

export interface SliceRef {
  study: number;
  slice: number;
}

export interface DataOptions {
  /** sequences used as the three input channels (default FLAIR, T1ce, T2 for BraTS) */
  channels?: readonly string[];
  regions: RegionKind;
  /** bytes the kept volumes may take in all (default: trainingDataBudget()) */
  memoryBudget?: number;
  /**
   * How the run will draw its slices: the sampling options and how many epochs it spans given the
   * slices of one epoch. With it, studies that do not fit in the budget whole keep only the slices
   * some epoch of the run draws; the others could never reach a batch, so the run trains exactly as
   * if every study were whole. Without it (validation, held-out studies, which are segmented
   * whole) data past the budget is refused.
   */
  draws?: { sampling: SamplingOptions; epochs(slicesPerEpoch: number): number };
}

/**
 * The studies stay in memory for the whole run, so their total is checked while they load: past
 * this, the kernel's OOM killer would end the run with no message (263 BraTS-sized studies, about
 * 23 GB with every sequence kept, did on a 24 GB machine). Half the physical memory leaves room for
 * the model, its gradients and the optimiser state.
 */
export function trainingDataBudget(): number {
  return Math.floor(totalmem() * 0.5);
}

/** The study folders below `root`: `root` itself if it is a study, else each sub-folder that is one. */
export function studyFolders(root: string): string[] {
  if (!existsSync(root)) throw new FileError(root, 'no such file or directory');
  if (!statSync(root).isDirectory()) return [root];
  const entries = readdirSync(root, { withFileTypes: true });
  const hasImages = entries.some((e) => e.isFile() && /\.(nii(\.gz)?|dcm)$/i.test(e.name));
  if (hasImages) return [root];
  return entries.filter((e) => e.isDirectory()).map((e) => join(root, e.name)).sort();
}

/** The bytes a training study keeps in memory: each volume once (two channels may read one sequence). */
function keptBytes(s: Pick<TrainingStudy, 'channels' | 'seg'>): number {
  return [...new Set([...s.channels, s.seg])].reduce((sum, v) => sum + v.data.byteLength, 0);
}

/** A labelled study as training data: its channel volumes and label map, and its axial slices sorted into tumour and brain without tumour. */
function trainingStudy(study: Study, folder: string, channelNames: readonly string[] | undefined, findEdges: boolean): TrainingStudy {
  if (!study.seg) throw new FileError(folder, `study ${study.name} has no ground truth (<case>_seg.nii.gz) to train on`);
  const channels = inputChannels(study, channelNames);
  const seg = study.seg;
  // a sequence no channel reads (T1 for FLAIR/T1ce/T2) is let go: a quarter of a BraTS study
  const read = Object.fromEntries(Object.entries(study.sequences).filter(([, v]) => channels.includes(v)));
  const [nx, ny, nz] = seg.dims;
  const tumourSlices: number[] = [];
  const emptySlices: number[] = [];
  for (let k = 0; k < nz; k++) {
    const view = seg.sliceView(k);
    let tumour = false;
    for (let i = 0; i < nx * ny; i++) {
      if (view[i] !== 0) {
        tumour = true;
        break;
      }
    }
    if (tumour) tumourSlices.push(k);
    else if (!isEmptySlice(channels, k)) emptySlices.push(k);
  }
  // the head-area rule of inference (preprocess.ts), so that unstripped heads have edge slices too
  let edgeSlices: number[] = [];
  if (findEdges) {
    const area = Array.from({ length: nz }, (_, k) => headAreaMm2(channels, k));
    const largest = Math.max(...area);
    edgeSlices = emptySlices.filter((k) => area[k]! < EDGE_SLICE_AREA * largest);
  }
  return { study: { ...study, sequences: read }, channels, seg, tumourSlices, emptySlices, edgeSlices };
}

/** A study past the memory budget, remembered by its slice lists until the run's draws are known. */
interface DeferredStudy {
  folder: string;
  name: string;
  tumourSlices: number[];
  emptySlices: number[];
  edgeSlices: number[];
}

/**
 * Opens every labelled study under `roots`; a study without ground truth is an error (it can't
 * teach anything). Studies are kept whole while they fit in the memory budget. Past it, with
 * `opts.draws`, the slice lists of the remaining studies are taken and their voxels let go; once
 * every list is known, each study keeps only the slices the run draws (the remaining ones read a
 * second time), which is what lets a run span more studies than fit in memory whole.
 */
export async function loadTrainingStudies(roots: readonly string[], opts: DataOptions): Promise<TrainingStudy[]> {
  const { openPath } = await import('../io/open.ts');
  const folders = roots.flatMap(studyFolders);
  if (!folders.length) throw new UserError(`no studies found in ${roots.join(', ')}`);
  const budget = opts.memoryBudget ?? trainingDataBudget();
  const budgetName = opts.memoryBudget === undefined ? 'half the physical memory' : 'the memory budget given';
  let kept = 0;
  const loaded: (TrainingStudy | DeferredStudy)[] = [];
  let deferring = false;
  const findEdges = opts.draws?.sampling.edgeShare !== undefined;
  for (const folder of folders) {
    const { studies: opened } = await openPath(folder);
    for (const study of opened) {
      const s = trainingStudy(study, folder, opts.channels, findEdges);
      const bytes = keptBytes(s);
      if (!deferring && kept + bytes <= budget) {
        kept += bytes;
        loaded.push(s);
        continue;
      }
      if (!opts.draws) {
        const each = (kept + bytes) / (loaded.length + 1);
        throw new UserError(
          `the training data does not fit in memory: ${loaded.length + 1} of ${folders.length} studies already take ${formatBytes(kept + bytes)}, ` +
            `more than ${formatBytes(budget)} (${budgetName}), at about ${formatBytes(each)} a study. ` +
            `Train on at most about ${Math.floor(budget / each)} studies of this size at a time (then --checkpoint the result and go on with the rest).`,
        );
      }
      deferring = true;
      loaded.push({ folder, name: study.name, tumourSlices: s.tumourSlices, emptySlices: s.emptySlices, edgeSlices: s.edgeSlices });
    }
  }
  if (!deferring) return loaded as TrainingStudy[];

  const drawn = drawnSlices(loaded, opts.draws!);
  const totalDrawn = drawn.reduce((sum, d) => sum + d.length, 0);
  const totalSlices = loaded.reduce((sum, s) => sum + s.tumourSlices.length + s.emptySlices.length, 0);
  kept = 0;
  const studies: TrainingStudy[] = [];
  // a folder holding several studies (a DICOM folder) is read once for all of them
  let reread: { folder: string; studies: Study[] } | undefined;
  for (let i = 0; i < loaded.length; i++) {
    const entry = loaded[i]!;
    let whole: TrainingStudy;
    if ('seg' in entry) whole = entry;
    else {
      if (reread?.folder !== entry.folder) {
        reread = undefined; // the last folder's volumes go before the next folder's arrive
        reread = { folder: entry.folder, studies: (await openPath(entry.folder)).studies };
      }
      whole = reopen(entry, reread.studies, opts.channels, findEdges);
    }
    const subset = keepSlices(whole, drawn[i]!);
    // the whole volumes go as soon as their subset exists
    loaded[i] = subset;
    kept += keptBytes(subset);
    if (kept > budget) {
      throw new UserError(
        `the training data does not fit in memory even as the ${totalDrawn} slices the run draws (of ${totalSlices} with brain): ` +
          `those of ${i + 1} of ${loaded.length} studies already take ${formatBytes(kept)}, more than ${formatBytes(budget)} (${budgetName}). ` +
          `Train on fewer studies or fewer steps at a time (then --checkpoint the result and go on with the rest).`,
      );
    }
    studies.push(subset);
  }
  return studies;
}

/** A deferred study read again (`studies`: its folder, opened anew); its slices must sort as they did the first time. */
function reopen(entry: DeferredStudy, studies: readonly Study[], channelNames: readonly string[] | undefined, findEdges: boolean): TrainingStudy {
  const study = studies.find((s) => s.name === entry.name);
  if (!study) throw new FileError(entry.folder, `study ${entry.name} is gone: it was there when the training data was first read`);
  const s = trainingStudy(study, entry.folder, channelNames, findEdges);
  if (s.tumourSlices.join() !== entry.tumourSlices.join() || s.emptySlices.join() !== entry.emptySlices.join() || s.edgeSlices.join() !== entry.edgeSlices.join()) {
    throw new FileError(entry.folder, `study ${entry.name} changed while the training data was loading (its slices no longer sort as they did)`);
  }
  return s;
}

/** Per study, the sorted slices that some epoch of the run draws. */
function drawnSlices(plans: readonly SlicePlan[], draws: NonNullable<DataOptions['draws']>): number[][] {
  const sets = plans.map(() => new Set<number>());
  const drawable = plans.reduce((sum, s) => sum + s.tumourSlices.length + s.emptySlices.length, 0);
  let found = 0;
  const epochs = draws.epochs(epochSamples(plans, 0, draws.sampling).length);
  // a long run draws every slice long before its last epoch: stop looking then
  for (let epoch = 0; epoch < epochs && found < drawable; epoch++) {
    for (const ref of epochSamples(plans, epoch, draws.sampling)) {
      const set = sets[ref.study]!;
      if (!set.has(ref.slice)) {
        set.add(ref.slice);
        found++;
      }
    }
  }
  return sets.map((set) => [...set].sort((a, b) => a - b));
}

/**
 * The study with only `slices` kept, in that order. Each channel keeps the intensity scaling of
 * its whole volume, which is what inference computes, so a batch is the same as from the whole.
 */
function keepSlices(s: TrainingStudy, slices: readonly number[]): TrainingStudy {
  const subsets = new Map<Volume, Volume>();
  const subsetOf = (v: Volume): Volume => {
    let subset = subsets.get(v);
    if (!subset) {
      subset = volumeSlices(v, slices);
      if (s.channels.includes(v)) seedIntensityScaling(subset, volumeIntensityScaling(v));
      subsets.set(v, subset);
    }
    return subset;
  };
  const channels = s.channels.map(subsetOf) as unknown as readonly [Volume, Volume, Volume];
  const seg = subsetOf(s.seg);
  const sequences = Object.fromEntries(Object.entries(s.study.sequences).map(([name, v]) => [name, subsetOf(v)]));
  return {
    study: { ...s.study, sequences, seg },
    channels,
    seg,
    tumourSlices: s.tumourSlices,
    emptySlices: s.emptySlices,
    edgeSlices: s.edgeSlices,
    stored: new Map(slices.map((k, i) => [k, i])),
  };
}

/**
 * A volume of the given axial slices only. Its geometry keeps the in-plane grid but no longer
 * places slices in space (they need not be adjacent): it is for reading slices, nothing else.
 */
function volumeSlices(v: Volume, slices: readonly number[]): Volume {
  const n = v.voxelsPerSlice * v.components;
  const Data = v.data.constructor as new (length: number) => typeof v.data;
  const data = new Data(n * slices.length);
  slices.forEach((k, i) => data.set(v.sliceView(k) as never, i * n));
  const [nx, ny] = v.dims;
  return new Volume({
    geometry: { ...v.geometry, dims: [nx, ny, slices.length] },
    data,
    slope: v.slope,
    intercept: v.intercept,
    components: v.components,
    meta: v.meta,
  });
}

/** What the sampling plan reads of a study. */
export type SlicePlan = Pick<TrainingStudy, 'tumourSlices' | 'emptySlices' | 'edgeSlices'>;

export interface SamplingOptions {
  /** how many slices without tumour per slice with tumour (the rest of the empty ones are left out) */
  emptyRatio: number;
  /**
   * at most this many tumour slices of each study per epoch (a different draw each epoch), so a
   * study with a small tumour weighs as much as one with a large tumour; absent: every tumour slice
   */
  tumourSlicesPerStudy?: number;
  /**
   * the share of each study's empty draws taken from its edge slices (`edgeSlices`), the rest
   * from the other empty slices; absent: all empty slices alike. Edge slices are few (about a
   * quarter of a brain's empty slices) and unlike the rest, a small partial-volume patch of cortex
   * or cerebellum; a model that rarely sees them calls part of them tumour.
   */
  edgeShare?: number;
  seed: number;
}

/** `take` empty slices of a study, `edgeShare` of them (as far as there are) from its edge slices. */
function drawEmptySlices(s: SlicePlan, take: number, edgeShare: number, random: () => number): number[] {
  const isEdge = new Set(s.edgeSlices);
  const edge = shuffleInPlace([...s.edgeSlices], random);
  const inner = shuffleInPlace(s.emptySlices.filter((k) => !isEdge.has(k)), random);
  const fromEdge = Math.min(edge.length, Math.max(take - inner.length, Math.round(take * edgeShare)));
  return [...edge.slice(0, fromEdge), ...inner.slice(0, take - fromEdge)];
}

/**
 * The slices of one epoch, shuffled: every tumour slice (or a draw of `tumourSlicesPerStudy` of
 * them), plus empty brain slices at `emptyRatio` per tumour slice taken (a different draw each
 * epoch; `edgeShare` of them from the edge slices), so the model learns to say "nothing"
 * without the many empty slices drowning the tumour. Deterministic in (seed, epoch), which makes
 * resuming replay the same order.
 */
export function epochSamples(studies: readonly SlicePlan[], epoch: number, opts: SamplingOptions): SliceRef[] {
  const random = rngAt(opts.seed, 1, epoch);
  const samples: SliceRef[] = [];
  studies.forEach((s, study) => {
    const cap = opts.tumourSlicesPerStudy ?? Infinity;
    const tumour = s.tumourSlices.length > cap ? shuffleInPlace([...s.tumourSlices], random).slice(0, cap) : s.tumourSlices;
    for (const slice of tumour) samples.push({ study, slice });
    const take = Math.min(s.emptySlices.length, Math.round(tumour.length * opts.emptyRatio));
    // without edgeShare the draw stays the one every earlier run made (resuming replays it)
    const empties = opts.edgeShare === undefined ? shuffleInPlace([...s.emptySlices], random).slice(0, take) : drawEmptySlices(s, take, opts.edgeShare, random);
    for (const slice of empties) samples.push({ study, slice });
  });
  return shuffleInPlace(samples, random);
}

export interface Batch {
  input: Float32Array;
  mask: Float32Array;
}

/**
 * One batch at the model size: inputs as inference prepares them, masks as one channel per region
 * (BraTS WT/TC/ET or binary foreground) resized bicubic and left soft (clipped to [0, 1]), as the
 * official dataset does; each item flipped horizontally and vertically with p = 0.5 (`augment`).
 */
export function makeBatch(
  studies: readonly TrainingStudy[],
  refs: readonly SliceRef[],
  size: readonly [number, number],
  regions: RegionKind,
  augment: { seed: number; step: number } | undefined,
): Batch {
  const [h, w] = size;
  const plane = h * w;
  const regionList = regionsFor(regions);
  const lookups = regionList.map(regionLookup);
  const c = regionList.length;
  const input = new Float32Array(refs.length * 3 * plane);
  const mask = new Float32Array(refs.length * c * plane);
  refs.forEach((ref, b) => {
    const s = studies[ref.study]!;
    const slice = storedSlice(s, ref.slice);
    prepareSlices(s.channels, [slice], { size, out: input.subarray(b * 3 * plane, (b + 1) * 3 * plane) });
    const [nx, ny] = s.seg.dims;
    const labels = s.seg.sliceView(slice);
    const binary = new Float32Array(c * nx * ny);
    for (let r = 0; r < c; r++) {
      const table = lookups[r]!;
      for (let i = 0; i < nx * ny; i++) binary[r * nx * ny + i] = table[labels[i]! & 255]!;
    }
    const resized = resizeBicubic(binary, c, ny, nx, h, w);
    const dst = mask.subarray(b * c * plane, (b + 1) * c * plane);
    for (let i = 0; i < dst.length; i++) dst[i] = Math.min(1, Math.max(0, resized[i]!));
    if (augment) {
      const random = rngAt(augment.seed, 2, augment.step, b);
      const flipX = random() < 0.5;
      const flipY = random() < 0.5;
      flipPlanes(input.subarray(b * 3 * plane, (b + 1) * 3 * plane), 3, h, w, flipX, flipY);
      flipPlanes(dst, c, h, w, flipX, flipY);
    }
  });
  return { input, mask };
}
