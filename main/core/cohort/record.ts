/**
 * What a cohort knows of each case, on disk beside the outputs:
 * - `<out>/<case>/cohort-case.json`: written into the case folder before the folder is put in
 *   place (util/fs.ts replaceDirectory), so a case folder with a record is complete; it holds
 *   the content hashes of the study and the model and the run's settings, which decide whether a
 *   rerun may skip the case, and the figures the cohort summary shows.
 * - `<out>/.cohort/failed/<case>.json`: why a case failed last time (removed when it succeeds);
 *   a failure never touches the case folder.
 * - `<out>/.cohort/partial/`: case folders being written (a killed worker's stay there until the
 *   case is done again).
 * The summary (summary.ts) is made from these files alone, so the single-machine run, the queue's
 * `collect` and the app all report the same way.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../util/fs.ts';
import type { MetricsReport } from '../report/index.ts';

export const CASE_RECORD = 'cohort-case.json';
const STATE_DIR = '.cohort';

/** done: segmented now; skipped: up to date from an earlier run; failed: its error says why; pending: not run (yet) */
export const CASE_STATUSES = ['done', 'skipped', 'failed', 'pending'] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];

/** How a case was segmented: a case whose inputs, model and these settings are unchanged is not run again. */
export interface RunFingerprint {
  /** sha256 of the checkpoint file */
  model_hash: string;
  /** model input [H, W], channels and regions it runs with */
  size: [number, number];
  channels: string[];
  regions: string;
  /** test-time augmentation (run-settings.ts): changes every voxel's logits, so a change reruns */
  tta: string;
  /** the user's choice of sequences for the channels (empty: the model's own) */
  channels_chosen: string[];
  /** the trunk configuration when given (the bundled model's config.json, --config) */
  config: unknown;
  postprocess: { minComponentMl: number; minEtMl: number };
  dicom_seg: boolean;
}

export interface RegionFigures {
  dice: number | null;
  hd95: number | null;
}

/** A case's figures, as its metrics.json holds them. */
export interface CaseFigures {
  /** the model's regions, in display order */
  regions: string[];
  /** predicted volume per region, ml */
  volumes_ml: Record<string, number>;
  /** whole-volume Dice and HD95 per region against ground truth; null without ground truth */
  metrics: Record<string, RegionFigures> | null;
  /** BraTS 2023 lesion-wise Dice and HD95 per region; null without ground truth */
  lesion_wise: Record<string, RegionFigures & { tp: number; fp: number; fn: number }> | null;
  /** predicted lesions (26-connected whole-tumour components of at least the minimum volume) */
  lesions: number;
}

/** The record of a segmented case (cohort-case.json). */
export interface CaseRecord extends CaseFigures {
  case: string;
  /** the study's name (its files' case id, the DICOM patient …) */
  study: string;
  /** the study's folder */
  source: string;
  kind: string;
  sequences_found: string[];
  /** the study's sequences fed to the model's channels, in channel order */
  sequences_used: string[];
  /** model channel ← study sequence, with substitutions marked */
  channels: string;
  ground_truth: boolean;
  model: string;
  checkpoint: string;
  /** the trunk preset (or "custom (embed_dim N)") */
  preset: string;
  device: string;
  /** sha256 over the study's files (hash.ts hashStudyInputs) */
  input_hash: string;
  run: RunFingerprint;
  /** notes of the run (substitutions, defaults assumed) */
  notes: string[];
  /** wall time of the case: reading, segmenting, metrics, writing */
  seconds: number;
  finished_at: string;
  /** the files written, relative to the case folder, with their sizes: a case is complete when all are there */
  files: { name: string; bytes: number }[];
  /** who ran it: host and process (the queue worker's name) */
  worker: string;
}

export interface FailureRecord {
  case: string;
  source: string;
  error: string;
  /** a problem with the study's data (a FileError, a missing sequence): running it again fails the same way */
  data_error: boolean;
  input_hash: string | null;
  run: RunFingerprint | null;
  seconds: number;
  finished_at: string;
  worker: string;
}

export function workerName(): string {
  return `${hostname()}:${process.pid}`;
}

export const caseDir = (out: string, name: string): string => join(out, name);
const failurePath = (out: string, name: string): string => join(out, STATE_DIR, 'failed', `${name}.json`);

/** A folder to write a case into before it is put in place: unique per writer, inside `out` (same file system). */
export function partialDir(out: string, name: string): string {
  return join(out, STATE_DIR, 'partial', `${name}.${hostname().replace(/[^A-Za-z0-9-]/g, '_')}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

/** The figures a cohort shows of a case, taken from its report (what metrics.json holds). */
export function figuresOf(report: MetricsReport): CaseFigures {
  const regions = [...report.settings.regions];
  const finite = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);
  const lesionWise = report.tumour.lesionWise?.regions;
  return {
    regions,
    volumes_ml: Object.fromEntries(regions.map((r) => [r, report.prediction.regionVolumesMl[r] ?? 0])),
    metrics: report.perVolume ? Object.fromEntries(regions.map((r) => [r, { dice: finite(report.perVolume![r]?.dice), hd95: finite(report.perVolume![r]?.hd95) }])) : null,
    lesion_wise: lesionWise
      ? Object.fromEntries(
          regions.filter((r) => lesionWise[r]).map((r) => {
            const l = lesionWise[r]!;
            return [r, { dice: finite(l.dice), hd95: finite(l.hd95), tp: l.tp, fp: l.fp, fn: l.fn }];
          }),
        )
      : null,
    lesions: report.tumour.description.lesions.length,
  };
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The case's record when its folder is complete (record present, every listed file there at its size), else null. */
export async function readCompleteRecord(out: string, name: string): Promise<CaseRecord | null> {
  const dir = caseDir(out, name);
  const record = await readJson<CaseRecord>(join(dir, CASE_RECORD));
  if (!record || record.case !== name || !Array.isArray(record.files) || record.files.length === 0) return null;
  for (const file of record.files) {
    const info = await stat(join(dir, file.name)).catch(() => null);
    if (!info?.isFile() || info.size !== file.bytes) return null;
  }
  return record;
}

export async function readFailure(out: string, name: string): Promise<FailureRecord | null> {
  return readJson<FailureRecord>(failurePath(out, name));
}

export async function writeFailure(out: string, failure: FailureRecord): Promise<void> {
  await writeFileAtomic(failurePath(out, failure.case), `${JSON.stringify(failure, null, 1)}\n`);
}

export async function clearFailure(out: string, name: string): Promise<void> {
  await rm(failurePath(out, name), { force: true });
}

/**
 * Removes partial folders of `name` left by writers that are gone: on this host, a process that
 * no longer exists; `anyHost` (the case is done and no job for it runs) removes all of them.
 */
export async function removeStalePartials(out: string, name: string, opts: { anyHost?: boolean } = {}): Promise<void> {
  const dir = join(out, STATE_DIR, 'partial');
  const host = hostname().replace(/[^A-Za-z0-9-]/g, '_');
  const pattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.([^.]+)\\.(\\d+)\\.[0-9a-f]{8}$`);
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const [, entryHost, pid] = pattern.exec(entry) ?? [];
    if (!entryHost || !pid) continue;
    const gone = opts.anyHost || (entryHost === host && Number(pid) !== process.pid && !processAlive(Number(pid)));
    if (gone) await rm(join(dir, entry), { recursive: true, force: true }).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/** Whether a recorded run matches the current one. */
export function sameRun(a: RunFingerprint, b: RunFingerprint): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
