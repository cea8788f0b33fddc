/**
 * The PACS part of the services behind api.ts: saved connections (settings.json without secrets,
 * the secrets in a SecretStore), the connection test, QIDO-RS search, fetching a study into the
 * instance cache and opening it from the instances fetched (in the io worker when the api service
 * has one: api-ports.ts openPacsStudy) with progress events and cancellation, and sending results
 * back. The api service (api-service.ts) delegates its pacs* methods here.
 */
import { randomBytes } from 'node:crypto';
import type { PacsConnectionInfo, PacsProgressEvent, PacsSearchRequest, PacsSearchResult, PacsSeriesSummary, PacsTestResult, SavePacsConnectionRequest, TestPacsConnectionRequest } from '../api.ts';
import { CancelledError, UserError, errorMessage } from '../errors.ts';
import { personName } from '../io/dicom-study.ts';
import type { PacsOpenedStudy, PacsOpenPort } from '../api-ports.ts';
import type { SettingsStore } from '../settings.ts';
import { DEFAULT_CACHE_BYTES, InstanceCache } from './cache.ts';
import { authOf, checkConnection, MemorySecretStore, type PacsConnection, type SecretStore } from './connection.ts';
import { DicomWebClient, PacsError, normalizeBaseUrl, parseDateRange } from './dicomweb.ts';
import { openPacsStudy } from './open-study.ts';
import type { RetrieveProgress } from './retrieve.ts';

export interface PacsServiceOptions {
  settings: SettingsStore;
  secrets?: SecretStore;
  /** where fetched instances are kept; absent = opening from a PACS is not available */
  cacheDir?: string;
  cacheBytes?: number;
  emit: (event: PacsProgressEvent) => void;
}

/** Same scheme, host and port: where a saved password may be sent. */
function sameServer(a: string, b: string): boolean {
  try {
    return new URL(normalizeBaseUrl(a)).origin === new URL(normalizeBaseUrl(b)).origin;
  } catch {
    return false;
  }
}

/** A date typed as YYYY-MM-DD or YYYYMMDD, for a QIDO range end. */
const compactDate = (text: string | undefined) => (text ?? '').trim().replace(/-/g, '');

export class PacsService {
  readonly #options: PacsServiceOptions;
  readonly #secrets: SecretStore;
  readonly #cache?: InstanceCache;
  readonly #jobs = new Map<string, AbortController>();

  constructor(options: PacsServiceOptions) {
    this.#options = options;
    this.#secrets = options.secrets ?? new MemorySecretStore();
    if (options.cacheDir) this.#cache = new InstanceCache(options.cacheDir, options.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  get cacheDir(): string | undefined {
    return this.#cache?.root;
  }

  async #info(connection: PacsConnection): Promise<PacsConnectionInfo> {
    const hasSecret = connection.auth !== 'none' && (await this.#secrets.get(connection.id).then(Boolean, () => false));
    return { ...connection, hasSecret };
  }

  async connections(): Promise<PacsConnectionInfo[]> {
    return Promise.all((await this.#options.settings.pacsConnections()).map((c) => this.#info(c)));
  }

  async #connection(id: string): Promise<PacsConnection> {
    const found = (await this.#options.settings.pacsConnections()).find((c) => c.id === id);
    if (!found) throw new UserError('that PACS connection no longer exists; choose another in Settings');
    return found;
  }

  async save(request: SavePacsConnectionRequest): Promise<PacsConnectionInfo> {
    const list = await this.#options.settings.pacsConnections();
    const existing = request.id ? list.find((c) => c.id === request.id) : undefined;
    if (request.id && !existing) throw new UserError('that PACS connection no longer exists');
    const connection = checkConnection({
      id: existing?.id ?? `pacs-${randomBytes(6).toString('hex')}`,
      name: request.name,
      url: request.url,
      auth: request.auth,
      ...(request.auth === 'basic' && request.user !== undefined ? { user: request.user } : {}),
    });
    // the secret first: a connection saved without the secret the user typed would fail later, less clearly
    if (request.auth === 'none') await this.#secrets.delete(connection.id);
    else if (request.secret) await this.#secrets.set(connection.id, request.secret);
    // a saved secret goes only to the server it was entered for: moved elsewhere, it must be typed again
    else if (existing && !sameServer(existing.url, connection.url)) await this.#secrets.delete(connection.id);
    await this.#options.settings.setPacsConnections(existing ? list.map((c) => (c.id === connection.id ? connection : c)) : [...list, connection]);
    return this.#info(connection);
  }

  async delete(id: string): Promise<{ deleted: boolean }> {
    const list = await this.#options.settings.pacsConnections();
    if (!list.some((c) => c.id === id)) return { deleted: false };
    await this.#options.settings.setPacsConnections(list.filter((c) => c.id !== id));
    await this.#secrets.delete(id);
    return { deleted: true };
  }

  async client(id: string): Promise<{ client: DicomWebClient; connection: PacsConnection }> {
    const { connection, auth } = await this.#credentials(id);
    return { client: new DicomWebClient(connection.url, { auth }), connection };
  }

  async #credentials(id: string) {
    const connection = await this.#connection(id);
    const secret = connection.auth === 'none' ? undefined : await this.#secrets.get(connection.id);
    return { connection, auth: authOf(connection, secret) };
  }

  async test(request: TestPacsConnectionRequest): Promise<PacsTestResult> {
    let client: DicomWebClient;
    try {
      if (request.url === undefined) {
        if (!request.id) throw new UserError('give a connection or a URL to test');
        client = (await this.client(request.id)).client;
      } else {
        const auth = request.auth ?? 'none';
        // the saved secret only for the server it was saved for: a page must not be able to send it elsewhere
        const saved = request.id ? (await this.#options.settings.pacsConnections()).find((c) => c.id === request.id) : undefined;
        const secret = request.secret ?? (saved && auth !== 'none' && sameServer(saved.url, request.url) ? await this.#secrets.get(saved.id) : undefined);
        const connection = checkConnection({ id: request.id ?? 'unsaved', name: request.url, url: request.url, auth, ...(request.user !== undefined ? { user: request.user } : {}) });
        client = new DicomWebClient(connection.url, { auth: authOf({ ...connection, name: 'being edited' }, secret) });
      }
    } catch (err) {
      return { ok: false, failure: err instanceof PacsError ? err.failure : 'settings', message: errorMessage(err), ms: 0 };
    }
    const result = await client.testConnection();
    return { ok: result.ok, message: result.message, ms: result.ms, ...(result.failure ? { failure: result.failure } : {}) };
  }

  async search(request: PacsSearchRequest): Promise<PacsSearchResult> {
    const { client } = await this.client(request.connectionId);
    const [from, to] = [compactDate(request.studyDateFrom), compactDate(request.studyDateTo)];
    const studyDate = from || to ? parseDateRange(from === to ? from : `${from}-${to}`) : undefined;
    const offset = request.offset ?? 0;
    const { studies, more } = await client.searchStudies({
      ...(request.patientName ? { patientName: request.patientName } : {}),
      ...(request.patientId ? { patientId: request.patientId } : {}),
      ...(studyDate ? { studyDate } : {}),
      ...(request.modality ? { modality: request.modality } : {}),
      ...(request.description ? { description: request.description } : {}),
      offset,
      limit: request.limit ?? 25,
    });
    return {
      offset,
      more,
      studies: studies.map((s) => ({
        studyUid: s.studyUid,
        patientName: personName(s.patientName) ?? '',
        patientId: s.patientId,
        modalities: s.modalities,
        ...(s.studyDate ? { studyDate: s.studyDate } : {}),
        ...(s.description ? { description: s.description } : {}),
        ...(s.series !== undefined ? { series: s.series } : {}),
        ...(s.instances !== undefined ? { instances: s.instances } : {}),
      })),
    };
  }

  async series(connectionId: string, studyUid: string): Promise<PacsSeriesSummary[]> {
    const { client } = await this.client(connectionId);
    return (await client.searchSeries(studyUid)).map(({ studyUid: _study, bodyPart: _body, ...rest }) => rest);
  }

  /** Where a study (or one series) opened from a PACS lives in the instance cache: the folder the study is known by. */
  folderOf(request: { studyUid: string; seriesUid?: string }): string {
    const cache = this.#requireCache();
    return request.seriesUid ? cache.seriesDir(request.studyUid, request.seriesUid) : cache.studyDir(request.studyUid);
  }

  #requireCache(): InstanceCache {
    if (!this.#cache) throw new UserError('opening studies from a PACS needs a data folder for the instance cache (sam2unet serve --data-dir)');
    return this.#cache;
  }

  /**
   * Fetches a study (or a series) into the cache and opens it from the instances fetched, by
   * `opener` (the io worker) or else here, emitting pacsProgress events under `jobId`;
   * cancel(jobId) stops it (CancelledError).
   */
  async open(request: { connectionId: string; studyUid: string; seriesUid?: string; jobId: string }, opener?: PacsOpenPort): Promise<PacsOpenedStudy> {
    const cache = this.#requireCache();
    if (this.#jobs.has(request.jobId)) throw new UserError(`a fetch with id ${request.jobId} is running already`);
    const { connection, auth } = await this.#credentials(request.connectionId);
    const controller = new AbortController();
    this.#jobs.set(request.jobId, controller);
    const onProgress = (p: RetrieveProgress) => this.#options.emit({ type: 'pacsProgress', jobId: request.jobId, ...p });
    const target = { studyUid: request.studyUid, ...(request.seriesUid ? { seriesUid: request.seriesUid } : {}) };
    try {
      if (opener) return await opener({ baseUrl: connection.url, auth, cacheDir: cache.root, cacheBytes: cache.maxBytes, ...target }, { signal: controller.signal, onProgress });
      const opened = await openPacsStudy(new DicomWebClient(connection.url, { auth }), cache, { ...target, signal: controller.signal, onProgress });
      setImmediate(() => void opened.writeCache());
      return { studies: opened.studies, notes: opened.notes, fetched: opened.fetched };
    } catch (err) {
      if (controller.signal.aborted) throw new CancelledError();
      throw err;
    } finally {
      this.#jobs.delete(request.jobId);
    }
  }

  /** Resolves when the cache writes of studies opened here (without an opener) are done. */
  async settled(): Promise<void> {
    await this.#cache?.settled();
  }

  cancel(jobId: string): boolean {
    const job = this.#jobs.get(jobId);
    job?.abort();
    return Boolean(job);
  }

  dispose(): void {
    for (const job of this.#jobs.values()) job.abort();
  }
}
