/**
 * A cohort in the app: a folder of studies as a table (sorted and filtered here), "Segment all"
 * running in the service with its progress and cancel, a row opened as a study with the
 * cohort's prediction over it, and the cohort summary exported.
 */
import type { ApiEvent, ClientApi, CohortRow, CohortStatus, CohortView, ExportResult } from '../../../main/core/api.ts';
import { runShown } from './study-state.svelte.ts';
import type { Session } from './session.svelte.ts';

export interface CohortJob {
  id: string;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  /** cases finished of those to run */
  done: number;
  total: number;
  message?: string;
  counts?: Record<'done' | 'skipped' | 'failed' | 'pending', number>;
}

/** A column the table sorts by: the case, its status, or a region's volume or Dice. */
export type SortKey = 'case' | 'status' | 'sequences' | 'groundTruth' | 'seconds' | `volume:${string}` | `dice:${string}`;

const STATUS_ORDER: Record<CohortStatus, number> = { running: 0, failed: 1, pending: 2, done: 3, skipped: 4 };

/** The value a row sorts by under `key`; null (unknown) sorts last either way. */
export function sortValue(row: CohortRow, key: SortKey): string | number | null {
  if (key === 'case') return row.case;
  if (key === 'status') return STATUS_ORDER[row.status];
  if (key === 'sequences') return row.sequences.length;
  if (key === 'groundTruth') return row.groundTruth === null ? null : Number(row.groundTruth);
  if (key === 'seconds') return row.seconds;
  const [kind, region] = key.split(':') as ['volume' | 'dice', string];
  return (kind === 'volume' ? row.volumes?.[region] : row.dice?.[region]) ?? null;
}

export function sortRows(rows: readonly CohortRow[], key: SortKey, ascending: boolean): CohortRow[] {
  return [...rows].sort((a, b) => {
    const [x, y] = [sortValue(a, key), sortValue(b, key)];
    if (x === null || y === null) return x === y ? a.case.localeCompare(b.case) : x === null ? 1 : -1;
    const order = typeof x === 'string' ? x.localeCompare(String(y)) : x - (y as number);
    return (ascending ? order : -order) || a.case.localeCompare(b.case);
  });
}

/** Rows whose case or sequences contain `text` (case-insensitive), with status `status` ('' = any). */
export function filterRows(rows: readonly CohortRow[], text: string, status: CohortStatus | ''): CohortRow[] {
  const needle = text.trim().toLowerCase();
  return rows.filter((r) => (!status || r.status === status || (status === 'done' && r.status === 'skipped')) && (!needle || r.case.toLowerCase().includes(needle) || r.sequences.some((s) => s.toLowerCase().includes(needle))));
}

export class Cohorts {
  readonly #api: ClientApi;
  readonly #session: Session;
  view = $state.raw<CohortView | null>(null);
  /** the table is on screen (instead of the viewer) */
  visible = $state(false);
  job = $state<CohortJob | null>(null);
  sortKey = $state<SortKey>('case');
  ascending = $state(true);
  filter = $state('');
  statusFilter = $state<CohortStatus | ''>('');
  /** segment every case again, also those up to date */
  force = $state(false);
  exported = $state.raw<ExportResult | null>(null);
  busy = $state<string | null>(null);
  error = $state<string | null>(null);

  constructor(api: ClientApi, session: Session) {
    this.#api = api;
    this.#session = session;
    session.openCohort = (path) => this.open(path);
    api.onEvent((event) => this.#onEvent(event));
  }

  get running(): boolean {
    return this.job?.status === 'running';
  }

  get rows(): CohortRow[] {
    return sortRows(filterRows(this.view?.rows ?? [], this.filter, this.statusFilter), this.sortKey, this.ascending);
  }

  sortBy(key: SortKey): void {
    if (this.sortKey === key) this.ascending = !this.ascending;
    else {
      this.sortKey = key;
      this.ascending = true;
    }
  }

  #run<T>(label: string, action: () => Promise<T>): Promise<T | undefined> {
    return runShown(this, label, action);
  }

  async open(path: string): Promise<boolean> {
    const trimmed = path.trim();
    if (!trimmed) {
      this.error = 'type the path of a folder of studies first';
      return false;
    }
    const view = await this.#run(`opening the cohort ${trimmed}`, () => this.#api.openCohort({ path: trimmed }));
    if (!view) {
      // the table may not be on screen yet: say it where the user is
      this.#session.error = this.error;
      return false;
    }
    this.view = view;
    this.exported = null;
    this.visible = true;
    this.#session.dialog = null;
    return true;
  }

  async refresh(): Promise<void> {
    const view = this.view;
    if (!view) return;
    const fresh = await this.#run('reading the cohort', () => this.#api.getCohort({ cohortId: view.cohortId }));
    if (fresh && this.view?.cohortId === fresh.cohortId) this.view = fresh;
  }

  async segmentAll(): Promise<void> {
    const view = this.view;
    if (!view || this.running) return;
    let out: string | undefined;
    // the desktop app asks where the outputs go, once per cohort
    if (this.#session.capabilities?.dialogs && !view.out) {
      const chosen = await this.#run('choosing the output folder', () => this.#api.chooseExportPath({ studyId: view.cohortId, format: 'report' }));
      if (!chosen) return;
      out = chosen.path;
    }
    const model = this.#session.model;
    const device = this.#session.device && this.#session.device !== 'auto' ? { device: this.#session.device } : {};
    const started = await this.#run('starting "Segment all"', () =>
      this.#api.segmentCohort({ cohortId: view.cohortId, ...(model ? { checkpoint: model } : {}), ...device, ...(this.force ? { force: true } : {}), ...(out ? { out } : {}) }),
    );
    if (!started) return;
    this.job = { id: started.jobId, status: 'running', done: 0, total: 0, message: 'checking which studies are up to date' };
    this.exported = null;
  }

  async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.status !== 'running') return;
    await this.#run('cancelling', () => this.#api.cancel({ jobId: job.id }));
  }

  /** A row clicked: its study in the viewer, with the cohort's prediction when there is one. */
  async openCase(row: CohortRow): Promise<void> {
    const view = this.view;
    if (!view) return;
    const opened = await this.#session.openCohortCase(view.cohortId, row.case);
    if (opened) this.visible = false;
  }

  async exportSummary(): Promise<void> {
    const view = this.view;
    if (!view) return;
    const result = await this.#run('writing the cohort summary', () => this.#api.exportCohort({ cohortId: view.cohortId }));
    if (result) this.exported = result;
  }

  #onEvent(received: ApiEvent): void {
    const job = this.job;
    // the job's events follow the reply that named it on the one channel (main/core/rpc/channel.ts)
    if (!job || received.type === 'menu' || !('jobId' in received) || received.jobId !== job.id) return;
    const event = received;
    switch (event.type) {
      case 'cohortCase': {
        const view = this.view;
        if (view && view.cohortId === event.cohortId) {
          const rows = view.rows.map((r) => (r.case === event.row.case ? event.row : r));
          const regions = [...view.regions];
          for (const r of Object.keys(event.row.volumes ?? {})) if (!regions.includes(r)) regions.push(r);
          this.view = { ...view, rows, regions };
        }
        break;
      }
      case 'progress':
        this.job = { ...job, done: event.done, total: event.total, message: event.message ?? job.message };
        break;
      case 'cohortDone':
        this.job = { ...job, status: 'done', done: job.total, counts: event.counts, message: undefined };
        void this.refresh();
        break;
      case 'failed':
        this.job = { ...job, status: 'failed', message: event.message };
        this.error = `"Segment all" failed: ${event.message}`;
        break;
      case 'cancelled':
        this.job = { ...job, status: 'cancelled', message: undefined };
        void this.refresh();
        break;
    }
  }
}
