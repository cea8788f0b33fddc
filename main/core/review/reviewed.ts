/**
 * The reviewed-studies folder: corrected masks saved as BraTS cases the trainer reads as they are
 * (`sam2unet train --data <folder>`): one folder per case holding `<case>_{t1,t1ce,t2,flair}`
 * (hard links to the study's NIfTI files when the file system allows, else copies; DICOM and
 * resampled sequences written as NIfTI), `<case>_seg.nii.gz` (the corrected labels, uint8) and
 * `<case>_review.json` (who, when, what the starting mask was). Every file is written atomically;
 * the JSON last, so a case with a record is complete.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { ReviewedStudy } from '../api.ts';
import { UserError, errorMessage } from '../errors.ts';
import { isNiftiPath, writeNifti } from '../io/nifti.ts';
import { BRATS_SEQUENCES } from '../io/study.ts';
import type { Volume } from '../io/volume.ts';
import { linkOrCopyAtomic, writeFileAtomic } from '../util/fs.ts';

export const REVIEW_SUFFIX = '_review.json';

/** What produced the mask before the user corrected it. */
export type MaskOrigin =
  | { kind: 'model'; model: string; checkpoint: string }
  | { kind: 'file'; path: string }
  | { kind: 'drawn' };

export function describeOrigin(origin: MaskOrigin | undefined): string {
  if (!origin || origin.kind === 'drawn') return 'drawn by hand (no starting mask)';
  return origin.kind === 'model' ? `segmented by ${origin.model} (${origin.checkpoint})` : `loaded from ${origin.path}`;
}

/** The record beside the mask. */
export interface ReviewRecord {
  case: string;
  reviewedAt: string;
  reviewer: string;
  startingMask: MaskOrigin & { description: string };
  /** edits applied in the app to the starting mask */
  edits: number;
  /** the study the case was saved from */
  source: { path: string; kind: string; name: string };
  /** how each image got into the case folder */
  images: Record<string, string>;
  /** voxels per label of the saved mask */
  labelVoxels: Record<string, number>;
  trainable: boolean;
  reason?: string;
  app: string;
}

export interface SaveReviewedInput {
  dir: string;
  caseName: string;
  /** the study's sequences by name, all on one grid */
  sequences: Record<string, Volume>;
  /** label values on that grid */
  labels: Uint8Array;
  origin?: MaskOrigin;
  edits: number;
  reviewer?: string;
  source: ReviewRecord['source'];
  now?: Date;
}

/** A study name as a BraTS case name (letters, digits, '.', '_', '-'). */
export function caseNameOf(studyName: string): string {
  return studyName.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._-]+/, '').slice(0, 120) || 'study';
}

function defaultReviewer(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A sequence that is its own, unresampled NIfTI file: linked (or copied) as it is. */
function niftiSource(volume: Volume): string | undefined {
  const file = volume.meta.sources[0];
  const resampled = (volume.meta.extra as { resampledFrom?: unknown } | undefined)?.resampledFrom !== undefined;
  return volume.meta.sources.length === 1 && file && isNiftiPath(file) && !resampled ? file : undefined;
}

/** What saving a reviewed case wrote. */
export interface SaveReviewedOutcome {
  study: ReviewedStudy;
  files: string[];
  notes: string[];
}

export async function saveReviewedCase(input: SaveReviewedInput): Promise<SaveReviewedOutcome> {
  const name = input.caseName;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UserError(`case name "${name}": use letters, digits, ".", "_" and "-" only`);
  const folder = join(input.dir, name);
  const reference = Object.values(input.sequences)[0];
  if (!reference) throw new UserError(`${name} has no image to save with its mask`);
  if (input.labels.length !== reference.data.length / reference.components) throw new UserError(`the mask has ${input.labels.length} voxels, the study's grid ${reference.dims.join('×')}`);
  const existing = await readdir(folder).catch(() => [] as string[]);
  const files: string[] = [];
  const notes: string[] = [];
  const images: Record<string, string> = {};
  for (const [sequence, volume] of Object.entries(input.sequences)) {
    if (volume.components !== 1) throw new UserError(`${name}/${sequence} is a colour image; a reviewed case holds MRI sequences`);
    const source = niftiSource(volume);
    const extension = source ? (/\.nii\.gz$/i.test(source) ? '.nii.gz' : '.nii') : '.nii.gz';
    const target = join(folder, `${name}_${sequence}${extension}`);
    // a case saved before with the other extension would hold two files for one role
    for (const stale of existing.filter((f) => f !== `${name}_${sequence}${extension}` && (f === `${name}_${sequence}.nii` || f === `${name}_${sequence}.nii.gz`))) await rm(join(folder, stale), { force: true });
    if (source) images[sequence] = `${await linkOrCopyAtomic(source, target)} from ${source}`;
    else {
      await writeNifti(target, volume, { description: `${sequence} of ${input.source.name}` });
      images[sequence] = `written from ${volume.meta.sources[0] ?? input.source.path}${(volume.meta.extra as { resampledFrom?: unknown } | undefined)?.resampledFrom ? ' (resampled onto the study grid)' : ''}`;
    }
    files.push(target);
  }
  const segFile = join(folder, `${name}_seg.nii.gz`);
  for (const stale of existing.filter((f) => f === `${name}_seg.nii`)) await rm(join(folder, stale), { force: true });
  await writeNifti(segFile, reference.withData(input.labels, { description: 'reviewed segmentation', modality: 'SEG' }), { dtype: 'uint8', description: 'SAM2-UNet workstation reviewed labels' });
  files.push(segFile);

  const missing = BRATS_SEQUENCES.filter((s) => !input.sequences[s]);
  const trainable = missing.length === 0;
  const reason = trainable ? undefined : `the trainer reads BraTS cases with T1, T1ce, T2 and FLAIR; this study lacks ${missing.join(', ')}`;
  if (reason) notes.push(`${name} is saved, but ${reason}: it is not offered for fine-tuning`);
  const counts: Record<string, number> = {};
  for (let i = 0; i < input.labels.length; i++) if (input.labels[i]) counts[input.labels[i]!] = (counts[input.labels[i]!] ?? 0) + 1;
  const reviewedAt = (input.now ?? new Date()).toISOString();
  const record: ReviewRecord = {
    case: name,
    reviewedAt,
    reviewer: input.reviewer ?? defaultReviewer(),
    startingMask: { ...(input.origin ?? { kind: 'drawn' }), description: describeOrigin(input.origin) },
    edits: input.edits,
    source: input.source,
    images,
    labelVoxels: counts,
    trainable,
    ...(reason ? { reason } : {}),
    app: 'SAM2-UNet Workstation',
  };
  const recordFile = join(folder, `${name}${REVIEW_SUFFIX}`);
  await writeFileAtomic(recordFile, `${JSON.stringify(record, null, 2)}\n`);
  files.push(recordFile);
  return { study: reviewedStudyOf(record, folder), files, notes };
}

function reviewedStudyOf(record: ReviewRecord, dir: string): ReviewedStudy {
  return {
    name: record.case,
    dir,
    reviewedAt: record.reviewedAt,
    reviewer: record.reviewer,
    startingMask: record.startingMask.description,
    trainable: record.trainable,
    ...(record.reason ? { reason: record.reason } : {}),
  };
}

/** The cases of the reviewed-studies folder, newest review first; unreadable records are skipped. */
export async function listReviewedCases(dir: string, log?: (line: string) => void): Promise<ReviewedStudy[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: ReviewedStudy[] = [];
  for (const name of names) {
    const file = join(dir, name, `${name}${REVIEW_SUFFIX}`);
    try {
      const record = JSON.parse(await readFile(file, 'utf8')) as ReviewRecord;
      if (typeof record.case !== 'string' || typeof record.reviewedAt !== 'string') throw new Error('not a review record');
      out.push(reviewedStudyOf(record, join(dir, name)));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') log?.(`skipped reviewed case ${name}: ${errorMessage(err)}`);
    }
  }
  return out.sort((a, b) => b.reviewedAt.localeCompare(a.reviewedAt) || a.name.localeCompare(b.name));
}
