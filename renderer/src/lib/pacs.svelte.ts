/**
 * The renderer's PACS state (Svelte 5 runes): saved connections, the study search and its pages,
 * the series of the study picked, a fetch in progress (instances, bytes, cancel) and the last
 * send. All of it goes through the api.ts pacs* methods: the page never talks to a PACS itself.
 */
import type { PacsConnectionInfo, PacsProgressEvent, PacsSearchRequest, PacsSendResult, PacsSeriesSummary, PacsStudySummary, PacsTestResult, SavePacsConnectionRequest } from '../../../main/core/api.ts';
import { messageOf, type Session } from './session.svelte.ts';

export const PAGE_SIZE = 10;

export type SearchFields = Omit<PacsSearchRequest, 'connectionId' | 'offset' | 'limit'>;

export interface Fetching {
  jobId: string;
  label: string;
  instances: number;
  totalInstances: number;
  bytes: number;
  cachedInstances: number;
}

export class Pacs {
  readonly session: Session;
  connections = $state<PacsConnectionInfo[]>([]);
  connectionId = $state('');
  fields = $state<SearchFields>({ patientName: '', patientId: '', studyDateFrom: '', studyDateTo: '', modality: '', description: '' });
  studies = $state<PacsStudySummary[]>([]);
  offset = $state(0);
  more = $state(false);
  searched = $state(false);
  searching = $state(false);
  /** the study whose series are listed */
  picked = $state<PacsStudySummary | null>(null);
  series = $state<PacsSeriesSummary[]>([]);
  fetching = $state<Fetching | null>(null);
  error = $state<string | null>(null);
  sending = $state(false);
  sent = $state<PacsSendResult | null>(null);
  sendError = $state<string | null>(null);

  constructor(session: Session) {
    this.session = session;
    session.api.onEvent((event) => {
      if (event.type === 'pacsProgress') this.#progress(event);
    });
  }

  #progress(event: PacsProgressEvent): void {
    if (this.fetching?.jobId !== event.jobId) return;
    this.fetching = { ...this.fetching, instances: event.instances, totalInstances: event.totalInstances, bytes: event.bytes, cachedInstances: event.cachedInstances };
  }

  async load(): Promise<void> {
    try {
      this.connections = await this.session.api.pacsConnections({});
      if (!this.connections.some((c) => c.id === this.connectionId)) this.connectionId = this.connections[0]?.id ?? '';
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  async save(request: SavePacsConnectionRequest): Promise<PacsConnectionInfo> {
    const saved = await this.session.api.savePacsConnection(request);
    await this.load();
    if (!this.connectionId) this.connectionId = saved.id;
    return saved;
  }

  async remove(id: string): Promise<void> {
    await this.session.api.deletePacsConnection({ id });
    await this.load();
  }

  test(request: Parameters<Session['api']['testPacsConnection']>[0]): Promise<PacsTestResult> {
    return this.session.api.testPacsConnection(request);
  }

  open(): void {
    void this.load();
    this.session.dialog = 'pacs';
  }

  async search(offset = 0): Promise<void> {
    if (!this.connectionId) {
      this.error = 'add a PACS connection in Settings first';
      return;
    }
    this.searching = true;
    this.error = null;
    try {
      const fields = Object.fromEntries(Object.entries(this.fields).filter(([, v]) => typeof v === 'string' && v.trim() !== '').map(([k, v]) => [k, (v as string).trim()]));
      const result = await this.session.api.pacsSearch({ connectionId: this.connectionId, ...fields, offset, limit: PAGE_SIZE });
      this.studies = result.studies;
      this.offset = result.offset;
      this.more = result.more;
      this.searched = true;
      this.picked = null;
      this.series = [];
    } catch (err) {
      this.error = messageOf(err);
    } finally {
      this.searching = false;
    }
  }

  async pick(study: PacsStudySummary): Promise<void> {
    this.picked = study;
    this.series = [];
    this.error = null;
    try {
      this.series = await this.session.api.pacsSeries({ connectionId: this.connectionId, studyUid: study.studyUid });
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  /** Fetches the study (or one series) with progress, then opens it in the study list. */
  async fetch(study: PacsStudySummary, series?: PacsSeriesSummary): Promise<boolean> {
    if (this.fetching) return false;
    const jobId = `pacs-${crypto.randomUUID()}`;
    const label = series ? `${series.description || `series ${series.number ?? ''}`} of ${study.patientName || study.patientId}` : `${study.patientName || study.patientId} ${study.description ?? ''}`.trim();
    this.fetching = { jobId, label, instances: 0, totalInstances: series?.instances ?? study.instances ?? 0, bytes: 0, cachedInstances: 0 };
    this.error = null;
    try {
      const result = await this.session.api.pacsOpen({ connectionId: this.connectionId, studyUid: study.studyUid, ...(series ? { seriesUid: series.seriesUid } : {}), jobId });
      this.session.dialog = null;
      await this.session.adoptOpened(result);
      return true;
    } catch (err) {
      const message = messageOf(err);
      this.error = /cancelled/i.test(message) ? 'fetch cancelled: what arrived is kept in the cache, the rest is fetched next time' : message;
      return false;
    } finally {
      this.fetching = null;
    }
  }

  async cancel(): Promise<void> {
    if (this.fetching) await this.session.api.cancel({ jobId: this.fetching.jobId });
  }

  async send(studyId: string, connectionId?: string): Promise<void> {
    this.sending = true;
    this.sent = null;
    this.sendError = null;
    try {
      this.sent = await this.session.api.pacsSend({ studyId, ...(connectionId ? { connectionId } : {}) });
    } catch (err) {
      this.sendError = messageOf(err);
    } finally {
      this.sending = false;
    }
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(0)} KB`;
  return `${bytes} bytes`;
}

export const displayDate = (d?: string) => (d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : (d ?? ''));
