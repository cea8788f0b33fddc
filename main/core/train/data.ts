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
import type { Volume } from '../io/volume.ts';
import { regionLookup, regionsFor, type RegionKind } from '../metrics/regions.ts';
import { resizeBicubic } from '../model/hiera.ts';
import { inputChannels, isEmptySlice, prepareSlices } from '../model/preprocess.ts';
import { formatBytes } from '../util/limits.ts';
import { rngAt, shuffleInPlace } from '../util/random.ts';

export interface TrainingStudy {
  study: Study;
  channels: readonly [Volume, Volume, Volume];
  seg: Volume;
  /** axial slices holding tumour */
  tumourSlices: number[];
  /** axial slices with brain but no tumour */
  emptySlices: number[];
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

/** Opens every labelled study under `roots`; a study without ground truth is an error (it can't teach anything). */
export async function loadTrainingStudies(roots: readonly string[], opts: DataOptions): Promise<TrainingStudy[]> {
  const { openPath } = await import('../io/open.ts');
  const folders = roots.flatMap(studyFolders);
  if (!folders.length) throw new UserError(`no studies found in ${roots.join(', ')}`);
  const budget = opts.memoryBudget ?? trainingDataBudget();
  const budgetName = opts.memoryBudget === undefined ? 'half the physical memory' : 'the memory budget given';
  let kept = 0;
  const studies: TrainingStudy[] = [];
  for (const folder of folders) {
    const { studies: opened } = await openPath(folder);
    for (const study of opened) {
      if (!study.seg) throw new FileError(folder, `study ${study.name} has no ground truth (<case>_seg.nii.gz) to train on`);
      const channels = inputChannels(study, opts.channels);
      const seg = study.seg;
      // a sequence no channel reads (T1 for FLAIR/T1ce/T2) is let go: a quarter of a BraTS study
      const read = Object.fromEntries(Object.entries(study.sequences).filter(([, v]) => channels.includes(v)));
      kept += [...new Set([...channels, seg])].reduce((sum, v) => sum + v.data.byteLength, 0);
      if (kept > budget) {
        const each = kept / (studies.length + 1);
        throw new UserError(
          `the training data does not fit in memory: ${studies.length + 1} of ${folders.length} studies already take ${formatBytes(kept)}, ` +
            `more than ${formatBytes(budget)} (${budgetName}), at about ${formatBytes(each)} a study. ` +
            `Train on at most about ${Math.floor(budget / each)} studies of this size at a time (then --checkpoint the result and go on with the rest).`,
        );
      }
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
      studies.push({ study: { ...study, sequences: read }, channels, seg, tumourSlices, emptySlices });
    }
  }
  return studies;
}

export interface SamplingOptions {
  /** how many slices without tumour per slice with tumour (the rest of the empty ones are left out) */
  emptyRatio: number;
  /**
   * at most this many tumour slices of each study per epoch (a different draw each epoch), so a
   * study with a small tumour weighs as much as one with a large tumour; absent: every tumour slice
   */
  tumourSlicesPerStudy?: number;
  seed: number;
}

/**
 * The slices of one epoch, shuffled: every tumour slice (or a draw of `tumourSlicesPerStudy` of
 * them), plus empty brain slices at `emptyRatio` per tumour slice taken (a different draw each epoch), so the model learns to say "nothing" without
 * the many empty slices drowning the tumour. Deterministic in (seed, epoch), which makes resuming
 * replay the same order.
 */
export function epochSamples(studies: readonly TrainingStudy[], epoch: number, opts: SamplingOptions): SliceRef[] {
  const random = rngAt(opts.seed, 1, epoch);
  const samples: SliceRef[] = [];
  studies.forEach((s, study) => {
    const cap = opts.tumourSlicesPerStudy ?? Infinity;
    const tumour = s.tumourSlices.length > cap ? shuffleInPlace([...s.tumourSlices], random).slice(0, cap) : s.tumourSlices;
    for (const slice of tumour) samples.push({ study, slice });
    const empties = shuffleInPlace([...s.emptySlices], random);
    const take = Math.min(empties.length, Math.round(tumour.length * opts.emptyRatio));
    for (const slice of empties.slice(0, take)) samples.push({ study, slice });
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
    prepareSlices(s.channels, [ref.slice], { size, out: input.subarray(b * 3 * plane, (b + 1) * 3 * plane) });
    const [nx, ny] = s.seg.dims;
    const labels = s.seg.sliceView(ref.slice);
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

function flipPlanes(data: Float32Array, planes: number, h: number, w: number, flipX: boolean, flipY: boolean): void {
  if (!flipX && !flipY) return;
  const tmp = new Float32Array(h * w);
  for (let p = 0; p < planes; p++) {
    const plane = data.subarray(p * h * w, (p + 1) * h * w);
    tmp.set(plane);
    for (let y = 0; y < h; y++) {
      const sy = flipY ? h - 1 - y : y;
      for (let x = 0; x < w; x++) plane[y * w + x] = tmp[sy * w + (flipX ? w - 1 - x : x)]!;
    }
  }
}
