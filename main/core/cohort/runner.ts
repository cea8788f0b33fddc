/**
 * A cohort on one machine: every case up to date is skipped (checked first, so progress and ETA
 * count only the work left), the others are segmented one after the other with one loaded
 * model, a failing case is recorded and the run goes on, and the summary is written at the end —
 * also when the run is cancelled, with the cases not reached marked pending (a rerun resumes).
 */
import { CancelledError } from '../errors.ts';
import { CaseFailedError, type CaseExecutor } from './case-run.ts';
import type { Cohort, CohortCase } from './find.ts';
import { writeFailure, workerName } from './record.ts';
import { buildSummary, rowFromCase, rowFromRecord, type CaseRow, type CohortSummary } from './summary.ts';
import { writeCohortSummary, type CohortFiles } from './report.ts';
import { errorMessage } from '../errors.ts';

export interface CohortPlan {
  cases: number;
  /** the cases to segment, in order */
  toRun: CohortCase[];
  upToDate: number;
  /** cases that failed before running (their files could not be read) */
  failed: number;
}

export interface CohortEvents {
  plan?(plan: CohortPlan): void;
  /** `index`: 0-based among the cases to run */
  caseStart?(entry: CohortCase, index: number): void;
  /** slices of the running case done so far */
  slice?(entry: CohortCase, done: number, total: number): void;
  /** every case's row once known (skipped cases during planning) */
  caseEnd?(row: CaseRow): void;
}

export interface CohortRunOptions {
  runner: CaseExecutor;
  /** segment every case again, even those up to date */
  force?: boolean;
  signal?: AbortSignal;
  events?: CohortEvents;
}

export interface CohortResult {
  summary: CohortSummary;
  files: CohortFiles;
  cancelled: boolean;
}

export async function runCohort(cohort: Cohort, out: string, opts: CohortRunOptions): Promise<CohortResult> {
  const { runner, events = {}, signal } = opts;
  const rows = new Map<string, CaseRow>();
  const toRun: { entry: CohortCase; inputHash: string }[] = [];
  let cancelled = false;
  const settle = (row: CaseRow) => {
    rows.set(row.case, row);
    events.caseEnd?.(row);
  };

  for (const entry of cohort.cases) {
    if (signal?.aborted) break;
    try {
      const { record, inputHash } = await runner.upToDate(entry, out);
      if (record && !opts.force) settle(rowFromRecord(record, 'skipped'));
      else toRun.push({ entry, inputHash });
    } catch (err) {
      // the study's files cannot be read: a failure of that case, recorded like any other
      const failure = { case: entry.name, source: entry.path, error: errorMessage(err), data_error: true, input_hash: null, run: runner.fingerprint, seconds: 0, finished_at: new Date().toISOString(), worker: workerName() };
      await writeFailure(out, failure);
      settle(rowFromCase(entry, 'failed', failure));
    }
  }
  events.plan?.({ cases: cohort.cases.length, toRun: toRun.map((t) => t.entry), upToDate: [...rows.values()].filter((r) => r.status === 'skipped').length, failed: [...rows.values()].filter((r) => r.status === 'failed').length });

  for (const [index, { entry, inputHash }] of toRun.entries()) {
    if (signal?.aborted) {
      cancelled = true;
      break;
    }
    events.caseStart?.(entry, index);
    try {
      const record = await runner.run(entry, out, { signal, inputHash, onSlice: (done, total) => events.slice?.(entry, done, total) });
      settle(rowFromRecord(record, 'done'));
    } catch (err) {
      if (err instanceof CaseFailedError) settle(rowFromCase(entry, 'failed', err.failure));
      else if (err instanceof CancelledError) {
        cancelled = true;
        break;
      } else throw err; // the model could not be loaded: no case can run
    }
  }
  if (signal?.aborted) cancelled = true;

  const ordered = cohort.cases.map((entry) => rows.get(entry.name) ?? rowFromCase(entry, 'pending'));
  const summary = buildSummary({ cohort: cohort.folder, out, rows: ordered, run: { ...runner.fingerprint, model: runner.choice.name, checkpoint: runner.choice.checkpoint } });
  const files = await writeCohortSummary(out, summary);
  return { summary, files, cancelled };
}
