/**
 * Cohorts in the app (api.ts openCohort, segmentCohort, openCohortCase, exportCohort): the
 * service's side. "Segment all" runs the single-machine cohort (runner.ts) with its cases in a
 * cohort thread (thread-client.ts), so the service's thread keeps answering the page; the
 * table follows it through cohortCase events; the outputs go where the app's exports go.
 */
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import type { ApiEvent, CohortRow, CohortView, JobStarted, SegmentCohortRequest } from '../api.ts';
import { CancelledError, UserError, errorMessage } from '../errors.ts';
import { realPathOf } from '../read-roots.ts';
import { currentReadScope, withReadScope } from '../util/fs.ts';
import { maskFileName } from '../conventions.ts';
import type { CohortRunSettings } from './case-run.ts';
import { findCohort, type Cohort } from './find.ts';
import { readCompleteRecord, type CaseRecord, type RunFingerprint } from './record.ts';
import { runCohort } from './runner.ts';
import { buildSummary, rowFromCase, rowFromDisk, type CaseRow } from './summary.ts';
import { writeCohortSummary } from './report.ts';
import { CohortThread } from './thread-client.ts';

export interface CohortHost {
  /** the absolute path when the services may read it; throws a UserError otherwise */
  readable(path: string): string;
  /** where a cohort's outputs go (web: in the export folder; desktop: the folder chosen in the save dialog, `path`) */
  resolveOut(cohortId: string, suggestedName: string, path?: string): string;
  /** how "Segment all" runs each study: the request and the app's settings (device, post-processing) */
  runSettings(request: SegmentCohortRequest): Promise<CohortRunSettings>;
  emit(event: ApiEvent): void;
  log?(line: string): void;
}

interface OpenCohort {
  id: string;
  scan: Cohort;
  name: string;
  out?: string;
  rows: Map<string, CaseRow>;
  running: Set<string>;
  job?: string;
  /** the model and settings of the last "Segment all", for the summary */
  run?: RunFingerprint & { model: string; checkpoint: string };
}

const newId = () => `cohort-${randomBytes(6).toString('hex')}`;

/** A case's row as the app's table shows it. */
export function tableRow(row: CaseRow, running: boolean): CohortRow {
  return {
    case: row.case,
    path: row.source,
    kind: row.kind ?? '',
    sequences: row.sequences_found ?? [],
    sequencesUsed: row.sequences_used,
    groundTruth: row.ground_truth,
    status: running ? 'running' : row.status,
    error: row.error,
    volumes: row.volumes_ml,
    dice: row.metrics ? Object.fromEntries(Object.entries(row.metrics).map(([r, m]) => [r, m.dice])) : null,
    seconds: row.seconds,
  };
}

export class CohortService {
  readonly #host: CohortHost;
  readonly #cohorts = new Map<string, OpenCohort>();

  constructor(host: CohortHost) {
    this.#host = host;
  }

  #cohort(cohortId: string): OpenCohort {
    const cohort = this.#cohorts.get(cohortId);
    if (!cohort) throw new UserError(`no open cohort with id ${cohortId}; open it again`);
    return cohort;
  }

  #view(cohort: OpenCohort): CohortView {
    const rows = cohort.scan.cases.map((entry) => cohort.rows.get(entry.name)!);
    const regions: string[] = [];
    for (const row of rows) for (const r of row.regions) if (!regions.includes(r)) regions.push(r);
    return {
      cohortId: cohort.id,
      name: cohort.name,
      folder: cohort.scan.folder,
      out: cohort.out ?? null,
      regions,
      rows: rows.map((row) => tableRow(row, cohort.running.has(row.case))),
      notes: cohort.scan.notes,
      jobId: cohort.job ?? null,
    };
  }

  /** What each case's outputs say (done, failed, not run), read again from the output folder. */
  async #refresh(cohort: OpenCohort): Promise<void> {
    for (const entry of cohort.scan.cases) {
      if (cohort.running.has(entry.name)) continue;
      cohort.rows.set(entry.name, cohort.out ? await rowFromDisk(entry, cohort.out) : rowFromCase(entry, 'pending'));
    }
  }

  async open({ path }: { path: string }): Promise<CohortView> {
    const folder = this.#host.readable(path);
    const already = [...this.#cohorts.values()].find((c) => c.scan.folder === realPathOf(folder) || c.scan.folder === folder);
    const scan = await findCohort(folder, { explicit: true });
    if (!scan) throw new UserError(`${path} is not a cohort`);
    if (already) {
      if (!already.job) already.scan = scan;
      await this.#refresh(already);
      return this.#view(already);
    }
    const id = newId();
    const name = basename(scan.folder);
    const cohort: OpenCohort = { id, scan, name, rows: new Map(), running: new Set() };
    try {
      cohort.out = this.#host.resolveOut(id, suggestedOutName(name));
    } catch {
      // the desktop app asks where to write when "Segment all" is pressed
    }
    await this.#refresh(cohort);
    this.#cohorts.set(id, cohort);
    return this.#view(cohort);
  }

  async view(cohortId: string): Promise<CohortView> {
    const cohort = this.#cohort(cohortId);
    await this.#refresh(cohort);
    return this.#view(cohort);
  }

  /** Starts "Segment all"; `job` is the service's job (cancel, and its end). */
  async segment(request: SegmentCohortRequest, job: { id: string; signal: AbortSignal; finish: () => void }): Promise<JobStarted> {
    const cohort = this.#cohort(request.cohortId);
    if (cohort.job) throw new UserError(`the cohort ${cohort.name} is being segmented already`);
    cohort.out ??= this.#host.resolveOut(cohort.id, suggestedOutName(cohort.name), request.out);
    const out = cohort.out;
    const settings = await this.#host.runSettings(request);
    // the model is chosen (and a bad checkpoint refused) before the job starts
    const thread = await CohortThread.start(settings, {
      substituteHint: 'A cohort feeds every study the same sequences: segment this study on its own to choose substitutes.',
      onNote: (text) => this.#host.log?.(`cohort ${cohort.name}: ${text}`),
    });
    cohort.job = job.id;
    cohort.run = { ...thread.fingerprint, model: thread.choice.name, checkpoint: thread.choice.checkpoint };
    const emitRow = (row: CaseRow) => this.#host.emit({ type: 'cohortCase', cohortId: cohort.id, jobId: job.id, row: tableRow(row, cohort.running.has(row.case)) });
    /** studies still marked running go back to what they were (pending when never written), before the job's closing event */
    const settleRunning = () => {
      const stopped = [...cohort.running];
      cohort.running.clear();
      for (const name of stopped) {
        const entry = cohort.scan.cases.find((c) => c.name === name);
        if (entry) emitRow(cohort.rows.get(name) ?? rowFromCase(entry, 'pending'));
      }
    };
    let toRun = 0;
    let finished = 0;
    let lastProgress = 0;
    const progress = (message: string, force = false) => {
      const now = performance.now();
      // slices stream at several per second: the page needs a few updates a second, not each one
      if (!force && now - lastProgress < 200) return;
      lastProgress = now;
      this.#host.emit({ type: 'progress', jobId: job.id, done: finished, total: toRun, message });
    };
    // on the next turn: the reply naming the job goes out before any of its events (rpc/channel.ts, "Ordering")
    setImmediate(() => void (async () => {
      try {
        const result = await runCohort(cohort.scan, out, {
          runner: thread,
          force: request.force === true,
          signal: job.signal,
          events: {
            plan: (plan) => {
              toRun = plan.toRun.length;
              progress(`${plan.upToDate} up to date, ${toRun} to segment`, true);
            },
            caseStart: (entry) => {
              cohort.running.add(entry.name);
              const row = cohort.rows.get(entry.name);
              if (row) emitRow(row);
              progress(`${entry.name}: reading`, true);
            },
            slice: (entry, done, total) => progress(`${entry.name}: ${done}/${total} slices`),
            caseEnd: (row) => {
              if (cohort.running.delete(row.case)) finished++;
              cohort.rows.set(row.case, row);
              emitRow(row);
              progress(`${row.case}: ${row.status}`, true);
            },
          },
        });
        for (const row of result.summary.cases) if (row.status === 'pending') cohort.rows.set(row.case, row);
        settleRunning();
        if (result.cancelled) this.#host.emit({ type: 'cancelled', jobId: job.id });
        else this.#host.emit({ type: 'cohortDone', cohortId: cohort.id, jobId: job.id, counts: result.summary.counts });
      } catch (err) {
        settleRunning();
        if (err instanceof CancelledError || job.signal.aborted) this.#host.emit({ type: 'cancelled', jobId: job.id });
        else {
          this.#host.log?.(`cohort ${cohort.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          this.#host.emit({ type: 'failed', jobId: job.id, message: errorMessage(err) });
        }
      } finally {
        cohort.job = undefined;
        await thread.dispose().catch(() => undefined);
        job.finish();
      }
    })());
    return { jobId: job.id, slices: cohort.scan.cases.length };
  }

  /**
   * A case to open in the viewer: its study folder and, when it was segmented, its label map as
   * the cohort wrote it (read with the output folder readable too: the app wrote it).
   */
  async caseToOpen(cohortId: string, name: string): Promise<{ path: string; prediction: { labels: Uint8Array; dims: [number, number, number]; record: CaseRecord } | null }> {
    const cohort = this.#cohort(cohortId);
    const entry = cohort.scan.cases.find((c) => c.name === name);
    if (!entry) throw new UserError(`the cohort ${cohort.name} has no case ${name}`);
    const path = this.#host.readable(entry.path);
    if (!cohort.out || cohort.running.has(name)) return { path, prediction: null };
    const record = await readCompleteRecord(cohort.out, name);
    const file = record?.files.find((f) => f.name.endsWith(maskFileName('', 'nifti')));
    if (!record || !file) return { path, prediction: null };
    const scope = currentReadScope();
    const { readNifti } = await import('../io/nifti.ts');
    const read = () => readNifti(join(cohort.out!, name, file.name));
    const nifti = await withReadScope(scope ? { ...scope, roots: [...scope.roots, realPathOf(cohort.out)] } : undefined, read);
    const volume = nifti.volumes[0]!;
    const labels = volume.data instanceof Uint8Array && !volume.isScaled ? volume.data : Uint8Array.from({ length: volume.data.length }, (_, i) => volume.value(i));
    return { path, prediction: { labels, dims: [...volume.dims] as [number, number, number], record } };
  }

  /** Writes the summary (cohort.html, .pdf, .csv, .json) of what the output folder holds now. */
  async export(cohortId: string): Promise<string[]> {
    const cohort = this.#cohort(cohortId);
    if (!cohort.out) throw new UserError(`the cohort ${cohort.name} has no results yet: segment it first`);
    await this.#refresh(cohort);
    const rows = cohort.scan.cases.map((entry) => cohort.rows.get(entry.name)!);
    const files = await writeCohortSummary(cohort.out, buildSummary({ cohort: cohort.scan.folder, out: cohort.out, rows, ...(cohort.run ? { run: cohort.run } : {}) }));
    return [files.html, files.pdf, files.csv, files.json];
  }
}

/** The output folder's name for a cohort folder (in the export folder, or suggested by the save dialog). */
export function suggestedOutName(cohortName: string): string {
  return `${cohortName.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'cohort'}_cohort`;
}
