/**
 * The cohort summary: one row per case, made from what is on disk (record.ts), written as
 * cohort.json, cohort.csv, cohort.html and cohort.pdf. The single-machine run, `queue collect`
 * and the app's export all go through here, so they say the same.
 */
import { csvField } from '../report/csv.ts';
import type { CohortCase } from './find.ts';
import { CASE_STATUSES, readCompleteRecord, readFailure, type CaseRecord, type CaseStatus, type FailureRecord, type RegionFigures, type RunFingerprint } from './record.ts';

export interface CaseRow {
  case: string;
  status: CaseStatus;
  error: string | null;
  source: string;
  study: string | null;
  kind: string | null;
  sequences_found: string[] | null;
  sequences_used: string[] | null;
  /** null: not known before the study is read (DICOM) */
  ground_truth: boolean | null;
  regions: string[];
  volumes_ml: Record<string, number> | null;
  metrics: Record<string, RegionFigures> | null;
  lesion_wise: Record<string, RegionFigures & { tp: number; fp: number; fn: number }> | null;
  lesions: number | null;
  model: string | null;
  checkpoint: string | null;
  device: string | null;
  input_hash: string | null;
  model_hash: string | null;
  /** wall time of the case's run (for a skipped case, of the run that made its outputs) */
  seconds: number | null;
  finished_at: string | null;
  worker: string | null;
  notes: string[];
  /** the case's output folder, relative to the cohort's output folder; null when it has none */
  outputs: string | null;
}

export interface CohortSummary {
  cohort: string;
  out: string;
  created_at: string;
  /** the model and settings of this run (absent for a summary collected without one) */
  run: (RunFingerprint & { model: string; checkpoint: string }) | null;
  regions: string[];
  counts: Record<CaseStatus, number>;
  cases: CaseRow[];
}

export function rowFromRecord(record: CaseRecord, status: 'done' | 'skipped'): CaseRow {
  return {
    case: record.case,
    status,
    error: null,
    source: record.source,
    study: record.study,
    kind: record.kind,
    sequences_found: record.sequences_found,
    sequences_used: record.sequences_used,
    ground_truth: record.ground_truth,
    regions: record.regions,
    volumes_ml: record.volumes_ml,
    metrics: record.metrics,
    lesion_wise: record.lesion_wise,
    lesions: record.lesions,
    model: record.model,
    checkpoint: record.checkpoint,
    device: record.device,
    input_hash: record.input_hash,
    model_hash: record.run?.model_hash ?? null,
    seconds: record.seconds,
    finished_at: record.finished_at,
    worker: record.worker,
    notes: record.notes,
    outputs: record.case,
  };
}

/** A case known only from the cohort's listing: pending, or failed with `error`. */
export function rowFromCase(entry: CohortCase, status: 'pending' | 'failed', failure?: Partial<FailureRecord> & { error: string }): CaseRow {
  return {
    case: entry.name,
    status,
    error: failure?.error ?? null,
    source: entry.path,
    study: null,
    kind: entry.kind,
    sequences_found: entry.sequences ?? null,
    sequences_used: null,
    ground_truth: entry.groundTruth ?? null,
    regions: [],
    volumes_ml: null,
    metrics: null,
    lesion_wise: null,
    lesions: null,
    model: null,
    checkpoint: null,
    device: null,
    input_hash: failure?.input_hash ?? null,
    model_hash: failure?.run?.model_hash ?? null,
    seconds: failure?.seconds ?? null,
    finished_at: failure?.finished_at ?? null,
    worker: failure?.worker ?? null,
    notes: [],
    outputs: null,
  };
}

/**
 * A case's row from the output folder: its complete outputs (done), else its failure record
 * (failed), else pending. `fingerprint` and `inputHash`, when given, make outputs of another
 * model, settings or study version count as pending (they are out of date).
 */
export async function rowFromDisk(entry: CohortCase, out: string, current?: { fingerprint?: RunFingerprint; inputHash?: string }): Promise<CaseRow> {
  const record = await readCompleteRecord(out, entry.name);
  const fresh = (hash: string | null | undefined, run: RunFingerprint | null | undefined) =>
    (current?.inputHash === undefined || hash === current.inputHash) && (current?.fingerprint === undefined || (run !== null && run !== undefined && JSON.stringify(run) === JSON.stringify(current.fingerprint)));
  if (record && fresh(record.input_hash, record.run)) return rowFromRecord(record, 'done');
  const failure = await readFailure(out, entry.name);
  if (failure && fresh(failure.input_hash, failure.run)) return rowFromCase(entry, 'failed', failure);
  return rowFromCase(entry, 'pending');
}

export function buildSummary(input: { cohort: string; out: string; rows: CaseRow[]; run?: CohortSummary['run'] }): CohortSummary {
  const regions: string[] = [];
  for (const row of input.rows) for (const r of row.regions) if (!regions.includes(r)) regions.push(r);
  const counts = Object.fromEntries(CASE_STATUSES.map((s) => [s, input.rows.filter((r) => r.status === s).length])) as Record<CaseStatus, number>;
  return { cohort: input.cohort, out: input.out, created_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), run: input.run ?? null, regions, counts, cases: input.rows };
}

/** The CSV's columns for the summary's regions, in order. */
export function csvColumns(regions: readonly string[]): string[] {
  const perRegion = (prefix: string) => regions.map((r) => `${prefix}_${r}`);
  return [
    'case',
    'status',
    'error',
    'study',
    'kind',
    'sequences_found',
    'sequences_used',
    'ground_truth',
    ...perRegion('volume_ml'),
    ...perRegion('dice'),
    ...perRegion('hd95'),
    ...perRegion('lesion_dice'),
    ...perRegion('lesion_hd95'),
    'lesions',
    'model',
    'device',
    'seconds',
    'finished_at',
    'worker',
    'model_hash',
    'input_hash',
    'outputs',
    'source',
  ];
}

/** Full precision (shortest round-trip form), as metrics.csv writes numbers; empty when unknown. */
const num = (v: number | null | undefined): string => (v === null || v === undefined || Number.isNaN(v) ? '' : String(v));

export function renderCohortCsv(summary: CohortSummary): string {
  const columns = csvColumns(summary.regions);
  const lines = [columns.join(',')];
  for (const row of summary.cases) {
    const cells: Record<string, string> = {
      case: row.case,
      status: row.status,
      error: row.error ?? '',
      study: row.study ?? '',
      kind: row.kind ?? '',
      sequences_found: (row.sequences_found ?? []).join(';'),
      sequences_used: (row.sequences_used ?? []).join(';'),
      ground_truth: row.ground_truth === null ? '' : row.ground_truth ? 'yes' : 'no',
      lesions: num(row.lesions),
      model: row.model ?? '',
      device: row.device ?? '',
      seconds: num(row.seconds),
      finished_at: row.finished_at ?? '',
      worker: row.worker ?? '',
      model_hash: row.model_hash ?? '',
      input_hash: row.input_hash ?? '',
      outputs: row.outputs ?? '',
      source: row.source,
    };
    for (const r of summary.regions) {
      cells[`volume_ml_${r}`] = num(row.volumes_ml?.[r]);
      cells[`dice_${r}`] = num(row.metrics?.[r]?.dice);
      cells[`hd95_${r}`] = num(row.metrics?.[r]?.hd95);
      cells[`lesion_dice_${r}`] = num(row.lesion_wise?.[r]?.dice);
      cells[`lesion_hd95_${r}`] = num(row.lesion_wise?.[r]?.hd95);
    }
    lines.push(columns.map((c) => csvField(cells[c] ?? '')).join(','));
  }
  return `${lines.join('\n')}\n`;
}

export function renderCohortJson(summary: CohortSummary): string {
  return `${JSON.stringify(summary, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 1)}\n`;
}
