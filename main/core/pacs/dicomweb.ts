/**
 * A DICOMweb client: QIDO-RS search, WADO-RS retrieval of instances, STOW-RS storage, and a
 * connection test that names what failed (DNS, refused connection, TLS, 401, 404 on the QIDO
 * path, a page that is not DICOM JSON).
 *
 * Built on Node's fetch with @remix-run/multipart-parser for the multipart/related replies of
 * WADO-RS. The npm package dicomweb-client was the first choice, but it sends every request
 * through XMLHttpRequest, which Node 20 does not have (and its multipart decoder is not
 * exported). The multipart/related body a STOW-RS request sends is written here: the parser
 * library only parses, and the encoding is a boundary line, one header and the bytes per part.
 *
 * In browser mode the workstation's server makes these requests, not the page, so CORS never
 * applies: a PACS need not allow the workstation's origin.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { MultipartParseError, MultipartParser, getMultipartBoundary } from '@remix-run/multipart-parser';
import { CancelledError, UserError, errorMessage } from '../errors.ts';

/** How the client proves who it is; the secret never travels in a URL or a command line. */
export type PacsAuth = { kind: 'none' } | { kind: 'basic'; user: string; password: string } | { kind: 'bearer'; token: string };

export const PACS_FAILURES = ['url', 'dns', 'refused', 'unreachable', 'tls', 'timeout', 'connection', 'auth', 'forbidden', 'not-found', 'http', 'protocol', 'stored-partly'] as const;
export type PacsFailure = (typeof PACS_FAILURES)[number];

/** A DICOMweb request that failed, with what failed (`failure`) for the connection test and the UI. */
export class PacsError extends UserError {
  override name = 'PacsError';
  readonly failure: PacsFailure;
  readonly status?: number;
  constructor(failure: PacsFailure, message: string, status?: number) {
    super(message);
    this.failure = failure;
    if (status !== undefined) this.status = status;
  }
}

/**
 * The base URL of a DICOMweb service (QIDO, WADO and STOW share it): http or https, no query,
 * no credentials (they would show in logs and the process list), trailing slashes dropped so
 * that "…/dicom-web" and "…/dicom-web/" are one service.
 */
export function normalizeBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new PacsError('url', `"${text}" is not a URL; a DICOMweb base URL looks like http://pacs.example:8042/dicom-web`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PacsError('url', `${text}: a DICOMweb URL starts with http:// or https://, not ${url.protocol}//`);
  if (url.username || url.password) throw new PacsError('url', `${url.host}: put the user and password in the connection's settings (or SAM2UNET_PACS_USER / SAM2UNET_PACS_PASSWORD), not in the URL`);
  if (url.search || url.hash) throw new PacsError('url', `${text}: a DICOMweb base URL has no query or fragment`);
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
/** A UID the server sent (or the user typed) before it goes into a URL or a file name: digits and dots only, at most 64. */
export function checkUid(uid: unknown, what: string): string {
  if (typeof uid !== 'string' || uid.length > 64 || !UID.test(uid)) throw new PacsError('protocol', `${what} "${String(uid).slice(0, 80)}" is not a DICOM UID`);
  return uid;
}

// ---------------------------------------------------------------------------------------------
// DICOM JSON (PS3.18 F.2): attributes keyed by tag, values in "Value".

export type DicomJson = Record<string, { vr?: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }>;

const TAG = {
  SpecificCharacterSet: '00080005',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  Rows: '00280010',
  Columns: '00280011',
  FailureReason: '00081197',
  FailedSOPSequence: '00081198',
  ReferencedSOPSequence: '00081199',
  WarningReason: '00081196',
  ReferencedSOPClassUID: '00081150',
  ReferencedSOPInstanceUID: '00081155',
  RetrieveURL: '00081190',
} as const;

function values(item: DicomJson, tag: string): unknown[] {
  const value = item[tag]?.Value;
  return Array.isArray(value) ? value : [];
}

function str(item: DicomJson, tag: string): string | undefined {
  const first = values(item, tag)[0];
  if (first === undefined || first === null) return undefined;
  if (typeof first === 'object') {
    // PN: {"Alphabetic": "DOE^JANE"}
    const alphabetic = (first as { Alphabetic?: unknown }).Alphabetic;
    return typeof alphabetic === 'string' ? alphabetic : undefined;
  }
  return String(first);
}

function int(item: DicomJson, tag: string): number | undefined {
  const value = Number(values(item, tag)[0]);
  return Number.isFinite(value) ? value : undefined;
}

export interface PacsStudy {
  studyUid: string;
  /** DICOM PN as stored ("DOE^JANE") */
  patientName: string;
  patientId: string;
  patientBirthDate?: string;
  patientSex?: string;
  /** YYYYMMDD */
  studyDate?: string;
  studyTime?: string;
  description?: string;
  accessionNumber?: string;
  modalities: string[];
  series?: number;
  instances?: number;
}

export interface PacsSeries {
  studyUid: string;
  seriesUid: string;
  modality?: string;
  description?: string;
  number?: number;
  instances?: number;
  bodyPart?: string;
}

export interface PacsInstance {
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
  sopClassUid?: string;
  number?: number;
}

function studyFrom(item: DicomJson): PacsStudy {
  const modalities = values(item, TAG.ModalitiesInStudy).map(String);
  return {
    studyUid: checkUid(str(item, TAG.StudyInstanceUID), 'StudyInstanceUID'),
    patientName: str(item, TAG.PatientName) ?? '',
    patientId: str(item, TAG.PatientID) ?? '',
    ...optional({
      patientBirthDate: str(item, TAG.PatientBirthDate),
      patientSex: str(item, TAG.PatientSex),
      studyDate: str(item, TAG.StudyDate),
      studyTime: str(item, TAG.StudyTime),
      description: str(item, TAG.StudyDescription),
      accessionNumber: str(item, TAG.AccessionNumber),
      series: int(item, TAG.NumberOfStudyRelatedSeries),
      instances: int(item, TAG.NumberOfStudyRelatedInstances),
    }),
    modalities,
  };
}

function seriesFrom(item: DicomJson, studyUid: string): PacsSeries {
  return {
    studyUid,
    seriesUid: checkUid(str(item, TAG.SeriesInstanceUID), 'SeriesInstanceUID'),
    ...optional({
      modality: str(item, TAG.Modality),
      description: str(item, TAG.SeriesDescription),
      number: int(item, TAG.SeriesNumber),
      instances: int(item, TAG.NumberOfSeriesRelatedInstances),
      bodyPart: str(item, TAG.BodyPartExamined),
    }),
  };
}

function instanceFrom(item: DicomJson, studyUid: string, seriesUid?: string): PacsInstance {
  return {
    studyUid,
    seriesUid: checkUid(str(item, TAG.SeriesInstanceUID) ?? seriesUid, 'SeriesInstanceUID'),
    sopInstanceUid: checkUid(str(item, TAG.SOPInstanceUID), 'SOPInstanceUID'),
    ...optional({ sopClassUid: str(item, TAG.SOPClassUID), number: int(item, TAG.InstanceNumber) }),
  };
}

/** Drops undefined fields (exact optional properties, and replies that validate). */
function optional<T extends Record<string, unknown>>(fields: T): Partial<{ [K in keyof T]: Exclude<T[K], undefined> }> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<{ [K in keyof T]: Exclude<T[K], undefined> }>;
}

// ---------------------------------------------------------------------------------------------

export interface StudyQuery {
  /** PatientName, matched with wildcards (a name without * or ? is matched anywhere) */
  patientName?: string;
  /** PatientID, exact unless it holds * or ? */
  patientId?: string;
  /** "YYYYMMDD-YYYYMMDD", either end open ("20260101-"), or one day */
  studyDate?: string;
  modality?: string;
  /** StudyDescription, matched anywhere */
  description?: string;
  studyUid?: string;
  offset?: number;
  limit?: number;
}

/** "2026-01-01-2026-12-31", "20260101-", "-20261231", "20260101": the DICOM range form, or a UserError. */
export function parseDateRange(text: string): string {
  const day = String.raw`(\d{4})-?(\d{2})-?(\d{2})`;
  const m = new RegExp(`^\\s*(?:${day})?\\s*(-)?\\s*(?:${day})?\\s*$`).exec(text);
  const join = (y?: string, mo?: string, d?: string) => (y ? `${y}${mo}${d}` : '');
  if (!m || (!m[1] && !m[5])) throw new UserError(`--study-date expects a date or a range like 20260101-20261231 (either end may be left open), got "${text}"`);
  const from = join(m[1], m[2], m[3]);
  const to = join(m[5], m[6], m[7]);
  for (const d of [from, to]) {
    if (!d) continue;
    const month = Number(d.slice(4, 6));
    const date = Number(d.slice(6, 8));
    if (month < 1 || month > 12 || date < 1 || date > 31) throw new UserError(`--study-date: ${d} is not a date (YYYYMMDD)`);
  }
  if (!m[4]) return from || to;
  if (from && to && from > to) throw new UserError(`--study-date: the range ${from}-${to} ends before it starts`);
  return `${from}-${to}`;
}

const anywhere = (text: string) => (/[*?]/.test(text) ? text : `*${text}*`);

export interface StoreOutcome {
  /** instances the server took, with where it keeps them when it says */
  stored: { sopClassUid: string; sopInstanceUid: string; url?: string }[];
  /** instances it refused, with its reason code (PS3.18 Table I.2-1 / PS3.4 status) */
  failed: { sopClassUid: string; sopInstanceUid: string; reason: string }[];
  warnings: string[];
  status: number;
}

export interface ConnectionTest {
  ok: boolean;
  failure?: PacsFailure;
  /** what was checked, or what failed, in words the user can act on */
  message: string;
  /** studies the QIDO probe saw (0 or 1: it asks for one) */
  studies?: number;
  ms: number;
}

export interface DicomWebOptions {
  auth?: PacsAuth;
  /** per request, until the headers arrive (a retrieval's body may take longer); default 30 s */
  timeoutMs?: number;
  /** a response body larger than this is refused (default 1 GiB) */
  maxInstanceBytes?: number;
  fetch?: typeof fetch;
}

/** A reply whose body is being read; `release` once it is (the caller's signal then no longer reaches it). */
interface Reply {
  response: IncomingMessage;
  release: () => void;
}

const DICOM_JSON = 'application/dicom+json, application/json;q=0.9';
const MULTIPART_DICOM = 'multipart/related; type="application/dicom"';
const FAILURE_REASONS: Record<string, string> = {
  '42752': 'refused: out of resources (0xA700)',
  '43264': 'error: data set does not match SOP class (0xA900)',
  '49152': 'error: cannot understand (0xC000)',
  '272': 'processing failure (0x0110)',
  '290': 'referenced SOP class not supported (0x0122)',
  '49442': 'referenced transfer syntax not supported (0xC122)',
  '45056': 'coercion of data elements (0xB000)',
  '45062': 'elements discarded (0xB006)',
  '45063': 'data set does not match SOP class (0xB007)',
};

export class DicomWebClient {
  readonly baseUrl: string;
  readonly #auth: PacsAuth;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #fetch: typeof fetch;
  readonly #releases = new WeakMap<Response, () => void>();

  constructor(baseUrl: string, options: DicomWebOptions = {}) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.#auth = options.auth ?? { kind: 'none' };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxBytes = options.maxInstanceBytes ?? 2 ** 30;
    this.#fetch = options.fetch ?? fetch;
  }

  #headers(accept: string, extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { Accept: accept, ...extra };
    if (this.#auth.kind === 'basic') headers.Authorization = `Basic ${Buffer.from(`${this.#auth.user}:${this.#auth.password}`, 'utf8').toString('base64')}`;
    else if (this.#auth.kind === 'bearer') headers.Authorization = `Bearer ${this.#auth.token}`;
    return headers;
  }

  /**
   * One request; network failures and error statuses become PacsErrors that say what failed.
   * The timeout runs until the headers arrive: a long series may then take its time.
   */
  async #request(path: string, init: { method?: string; accept: string; body?: Uint8Array; headers?: Record<string, string>; signal?: AbortSignal; what: string }): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    // one controller that the caller's signal and the timeout both abort (not AbortSignal.any: on
    // Node 20 its combined signal can be collected while the request still needs it)
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    const forward = () => controller.abort();
    if (init.signal?.aborted) controller.abort();
    init.signal?.addEventListener('abort', forward, { once: true });
    let response: Response;
    try {
      response = await this.#fetch(url, { method: init.method ?? 'GET', headers: this.#headers(init.accept, init.headers), body: init.body as BodyInit | undefined, signal: controller.signal, redirect: 'follow' });
    } catch (err) {
      init.signal?.removeEventListener('abort', forward);
      if (init.signal?.aborted) throw new CancelledError();
      throw networkFailure(err, url, timedOut ? this.#timeoutMs : undefined);
    } finally {
      clearTimeout(timer);
    }
    // the body may still be streaming: the caller's signal keeps reaching it until the caller has read it (#release)
    if (init.signal) this.#releases.set(response, () => init.signal!.removeEventListener('abort', forward));
    if (response.ok) return response;
    const body = await response.text().catch(() => '');
    this.#release(response);
    throw statusFailure(response, url, init.what, body, this.#auth);
  }

  /** The caller has read the body: its signal need not reach the request any more. */
  #release(response: Response): void {
    this.#releases.get(response)?.();
    this.#releases.delete(response);
  }

  async #json(path: string, what: string, signal?: AbortSignal): Promise<DicomJson[]> {
    const response = await this.#request(path, { accept: DICOM_JSON, what, signal });
    const text = await response.text().finally(() => this.#release(response));
    if (response.status === 204) return [];
    if (text.trim() === '') return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      const type = response.headers.get('content-type') ?? 'no content type';
      throw new PacsError('protocol', `${this.baseUrl}${path}: the server answered with ${type}, not DICOM JSON; is ${this.baseUrl} the DICOMweb base URL?`);
    }
    if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== 'object' || item === null || Array.isArray(item))) {
      throw new PacsError('protocol', `${this.baseUrl}${path}: the reply is JSON but not a list of DICOM datasets; is ${this.baseUrl} the DICOMweb base URL?`);
    }
    return parsed as DicomJson[];
  }

  /** QIDO-RS studies; `more` says whether the server has studies past `limit`. */
  async searchStudies(query: StudyQuery = {}, signal?: AbortSignal): Promise<{ studies: PacsStudy[]; more: boolean }> {
    const limit = Math.max(1, Math.min(1000, query.limit ?? 50));
    const params = new URLSearchParams();
    if (query.patientName?.trim()) params.set('PatientName', anywhere(query.patientName.trim()));
    if (query.patientId?.trim()) params.set('PatientID', query.patientId.trim());
    if (query.studyDate?.trim()) params.set('StudyDate', parseDateRange(query.studyDate));
    if (query.modality?.trim()) params.set('ModalitiesInStudy', query.modality.trim().toUpperCase());
    if (query.description?.trim()) params.set('StudyDescription', anywhere(query.description.trim()));
    if (query.studyUid) params.set('StudyInstanceUID', checkUid(query.studyUid, 'StudyInstanceUID'));
    for (const field of ['StudyDescription', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'PatientBirthDate', 'PatientSex', 'AccessionNumber', 'StudyTime']) params.append('includefield', field);
    // one more than asked: whether there is a next page
    params.set('limit', String(limit + 1));
    if (query.offset) params.set('offset', String(query.offset));
    const items = await this.#json(`/studies?${params}`, 'the study search (QIDO-RS)', signal);
    const studies = items.map(studyFrom);
    return { studies: studies.slice(0, limit), more: studies.length > limit };
  }

  /** QIDO-RS series of a study, in series-number order. */
  async searchSeries(studyUid: string, signal?: AbortSignal): Promise<PacsSeries[]> {
    checkUid(studyUid, 'StudyInstanceUID');
    const params = new URLSearchParams();
    for (const field of ['SeriesDescription', 'Modality', 'SeriesNumber', 'NumberOfSeriesRelatedInstances', 'BodyPartExamined']) params.append('includefield', field);
    const items = await this.#json(`/studies/${studyUid}/series?${params}`, 'the series search (QIDO-RS)', signal);
    return items.map((item) => seriesFrom(item, studyUid)).sort((a, b) => (a.number ?? Infinity) - (b.number ?? Infinity));
  }

  /** QIDO-RS instances of a series (or of a whole study). */
  async searchInstances(studyUid: string, seriesUid?: string, signal?: AbortSignal): Promise<PacsInstance[]> {
    checkUid(studyUid, 'StudyInstanceUID');
    if (seriesUid) checkUid(seriesUid, 'SeriesInstanceUID');
    const params = new URLSearchParams();
    for (const field of ['SOPClassUID', 'InstanceNumber', 'SeriesInstanceUID']) params.append('includefield', field);
    const path = seriesUid ? `/studies/${studyUid}/series/${seriesUid}/instances` : `/studies/${studyUid}/instances`;
    const items = await this.#json(`${path}?${params}`, 'the instance search (QIDO-RS)', signal);
    return items.map((item) => instanceFrom(item, studyUid, seriesUid));
  }

  /**
   * WADO-RS: one instance as the DICOM file it is stored as (transfer-syntax=*: no transcoding;
   * a server that refuses it is asked again for its default). `onBytes` hears each chunk's size.
   */
  async retrieveInstance(instance: PacsInstance, opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<Uint8Array> {
    const path = `/studies/${checkUid(instance.studyUid, 'StudyInstanceUID')}/series/${checkUid(instance.seriesUid, 'SeriesInstanceUID')}/instances/${checkUid(instance.sopInstanceUid, 'SOPInstanceUID')}`;
    const parts: Uint8Array[] = [];
    await this.#retrieve(path, `instance ${instance.sopInstanceUid} (WADO-RS)`, (part) => void parts.push(part), { ...opts, maxParts: 16 });
    if (parts.length !== 1) throw new PacsError('protocol', `${this.baseUrl}${path}: the reply holds ${parts.length} DICOM parts, one was expected`);
    return parts[0]!;
  }

  /**
   * WADO-RS: every instance of a series in one streamed reply, each handed to `onInstance` as
   * soon as its part has arrived. While 8 of the promises it returns are pending, reading pauses
   * (the server waits); a rejected one ends the retrieval with its error once the others settle.
   * Returns the number of instances.
   */
  async retrieveSeries(studyUid: string, seriesUid: string, onInstance: (bytes: Uint8Array) => void | Promise<void>, opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<number> {
    const path = `/studies/${checkUid(studyUid, 'StudyInstanceUID')}/series/${checkUid(seriesUid, 'SeriesInstanceUID')}`;
    return this.#retrieve(path, `series ${seriesUid} (WADO-RS)`, onInstance, { ...opts, maxParts: 100_000 });
  }

  /**
   * The application/dicom parts of a WADO-RS reply, each handed to `onPart` as it arrives, in the
   * reply's 'data' events (no await between chunks, no web stream: see #get).
   */
  async #retrieve(path: string, what: string, onPart: (bytes: Uint8Array) => void | Promise<void>, opts: { signal?: AbortSignal; onBytes?: (n: number) => void; maxParts: number }): Promise<number> {
    const url = `${this.baseUrl}${path}`;
    let reply: Reply;
    try {
      reply = await this.#get(url, `${MULTIPART_DICOM}; transfer-syntax=*`, what, opts.signal);
    } catch (err) {
      if (!(err instanceof PacsError) || (err.status !== 406 && err.status !== 400)) throw err;
      reply = await this.#get(url, MULTIPART_DICOM, what, opts.signal);
    }
    const { response, release } = reply;
    const type = response.headers['content-type'] ?? '';
    const maxBytes = this.#maxBytes * (opts.maxParts > 16 ? 64 : 1);
    const declared = Number(response.headers['content-length']);
    const single = /^application\/dicom\b/i.test(type);
    const boundary = /^multipart\//i.test(type) ? getMultipartBoundary(type) : null;
    try {
      if (Number.isFinite(declared) && declared > maxBytes) throw new PacsError('protocol', `${url}: the reply is ${declared} bytes, more than the ${maxBytes} allowed`);
      if (!single && !boundary) throw new PacsError('protocol', `${url}: expected multipart/related DICOM, got ${type || 'no content type'}`);
    } catch (err) {
      response.destroy();
      release();
      throw err;
    }
    const parser = boundary ? new MultipartParser(boundary, { maxFileSize: this.#maxBytes, maxTotalSize: maxBytes, maxParts: opts.maxParts }) : undefined;
    const whole: Uint8Array[] = [];
    const pending = new Set<Promise<void>>();
    let received = 0;
    let count = 0;
    return new Promise<number>((resolve, reject) => {
      let failure: unknown;
      let settled = false;
      const finish = async (err?: unknown) => {
        if (settled) return;
        settled = true;
        if (err !== undefined) response.destroy();
        // whatever the outcome, the parts handed over are dealt with before the caller hears of it
        await Promise.allSettled(pending);
        release();
        if (err === undefined && failure === undefined) return resolve(count);
        // the caller's own failure (a write that failed) is the one to report
        if (failure !== undefined) return reject(failure);
        if (opts.signal?.aborted) return reject(new CancelledError());
        if (err instanceof PacsError) return reject(err);
        if (err instanceof MultipartParseError) return reject(new PacsError('protocol', `${url}: malformed multipart reply (${err.message})`));
        reject(networkFailure(err, url));
      };
      const hand = (bytes: Uint8Array) => {
        count++;
        const result = onPart(bytes);
        if (!result) return;
        const tracked: Promise<void> = result.then(
          () => {
            pending.delete(tracked);
            if (pending.size < 8 && !settled) response.resume();
          },
          (err: unknown) => {
            pending.delete(tracked);
            failure ??= err;
            void finish(err);
          },
        );
        pending.add(tracked);
        if (pending.size >= 8) response.pause();
      };
      // after the close delimiter comes the epilogue, which RFC 2046 (5.1.1) says to ignore; Orthanc
      // sends its CRLF in a chunk of its own, and the parser refuses any write once it is done
      let closed = false;
      response.on('data', (chunk: Buffer) => {
        if (settled || closed) return;
        try {
          received += chunk.byteLength;
          if (received > maxBytes) throw new PacsError('protocol', `${url}: the reply is larger than the ${maxBytes} bytes allowed`);
          opts.onBytes?.(chunk.byteLength);
          if (!parser) {
            whole.push(chunk);
            return;
          }
          for (const part of parser.write(chunk)) {
            const partType = part.headers['content-type'] ?? 'application/dicom';
            if (!/^application\/dicom\b/i.test(partType)) throw new PacsError('protocol', `${url}: a part of the reply is ${partType}, not application/dicom`);
            // a part within one chunk is that chunk's view; else its chunks joined once (not
            // part.bytes, which zero-fills its buffer before copying into it)
            hand(part.content.length === 1 ? part.content[0]! : Buffer.concat(part.content));
          }
          closed = multipartComplete(parser);
        } catch (err) {
          void finish(err);
        }
      });
      response.on('end', () => {
        try {
          if (parser) parser.finish();
          else hand(Buffer.concat(whole));
          void finish();
        } catch (err) {
          void finish(err);
        }
      });
      response.on('error', (err) => void finish(err));
      // the server closed the connection before the reply was complete
      response.on('close', () => {
        if (!response.complete) void finish(Object.assign(new Error('the connection closed before the reply was complete'), { code: 'ECONNRESET' }));
      });
    });
  }

  /**
   * A GET whose body is read as it arrives, with node:http(s) rather than fetch: fetch's web
   * streams cost more than the transfer itself (the 155-instance series, 18 MB from Orthanc on
   * loopback: 106 ms wall and 57 ms CPU through fetch with the same multipart parsing, 77 ms and
   * 42 ms this way; curl 44 ms). Same behaviour as #request: credentials, the caller's signal,
   * the timeout until the headers arrive, redirects followed (credentials only to the same
   * origin, as fetch does), failures as PacsErrors that say what failed. The caller reads the
   * body, then calls `release`.
   */
  #get(url: string, accept: string, what: string, signal?: AbortSignal, redirects = 0, origin = new URL(url).origin): Promise<Reply> {
    const target = new URL(url);
    const controller = new AbortController();
    const forward = () => controller.abort();
    if (signal?.aborted) return Promise.reject(new CancelledError());
    signal?.addEventListener('abort', forward, { once: true });
    const release = () => signal?.removeEventListener('abort', forward);
    const headers = target.origin === origin ? this.#headers(accept) : { Accept: accept };
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Reply>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.#timeoutMs);
      const fail = (err: unknown) => {
        clearTimeout(timer);
        release();
        if (signal?.aborted) reject(new CancelledError());
        else reject(networkFailure(err, url, timedOut ? this.#timeoutMs : undefined));
      };
      const request = send(target, { method: 'GET', headers, signal: controller.signal }, (response) => {
        clearTimeout(timer);
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        if (status >= 300 && status < 400 && location && status !== 304) {
          response.resume();
          release();
          if (redirects >= 20) return reject(new PacsError('http', `${withoutQuery(url)}: more than 20 redirects during ${what}`, status));
          let next: string;
          try {
            next = new URL(location, url).toString();
          } catch {
            return reject(new PacsError('http', `${withoutQuery(url)}: a redirect to "${location.slice(0, 200)}", which is not a URL`, status));
          }
          return resolve(this.#get(next, accept, what, signal, redirects + 1, origin));
        }
        if (status >= 200 && status < 300) return resolve({ response, release });
        // an error status: its body (a few KB at most) says why
        const body: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          if (size < 65_536) body.push(chunk);
          size += chunk.byteLength;
        });
        const done = () => {
          release();
          reject(statusFailure({ status, statusText: response.statusMessage ?? '' }, url, what, Buffer.concat(body).toString('utf8'), this.#auth));
        };
        response.once('end', done);
        response.once('error', done);
      });
      request.once('error', fail);
      request.end();
    });
  }

  /**
   * STOW-RS: stores DICOM files (into `studyUid` when given, which the server then checks).
   * A reply naming failed instances throws a PacsError listing each with its reason.
   */
  async store(files: Uint8Array[], opts: { studyUid?: string; signal?: AbortSignal } = {}): Promise<StoreOutcome> {
    if (files.length === 0) throw new UserError('nothing to store');
    const boundary = `sam2unet-${randomBytes(12).toString('hex')}`;
    const body = encodeMultipartRelated(files, boundary);
    const path = opts.studyUid ? `/studies/${checkUid(opts.studyUid, 'StudyInstanceUID')}` : '/studies';
    let response: Response;
    let text: string;
    try {
      response = await this.#request(path, {
        method: 'POST',
        accept: DICOM_JSON,
        body,
        headers: { 'Content-Type': `${MULTIPART_DICOM}; boundary=${boundary}` },
        signal: opts.signal,
        what: 'storing (STOW-RS)',
      });
      text = await response.text().finally(() => this.#release(response));
    } catch (err) {
      // 409 and 400 carry the per-instance failures in their body too
      if (!(err instanceof PacsError) || !err.status || !storeBodies.has(err)) throw err;
      const { status, body: failureBody } = storeBodies.get(err)!;
      return this.#storeOutcome(status, failureBody, path, err);
    }
    return this.#storeOutcome(response.status, text, path);
  }

  #storeOutcome(status: number, text: string, path: string, httpError?: PacsError): StoreOutcome {
    let items: DicomJson[] = [];
    try {
      const parsed: unknown = text.trim() ? JSON.parse(text) : [];
      items = (Array.isArray(parsed) ? parsed : [parsed]) as DicomJson[];
    } catch {
      if (httpError) throw httpError;
      throw new PacsError('protocol', `${this.baseUrl}${path}: the STOW-RS reply is not DICOM JSON`);
    }
    const reply = items[0] ?? {};
    const sequence = (tag: string) => values(reply, tag).filter((v): v is DicomJson => typeof v === 'object' && v !== null);
    const outcome: StoreOutcome = {
      status,
      stored: sequence(TAG.ReferencedSOPSequence).map((item) => ({
        sopClassUid: str(item, TAG.ReferencedSOPClassUID) ?? '',
        sopInstanceUid: str(item, TAG.ReferencedSOPInstanceUID) ?? '',
        ...optional({ url: str(item, TAG.RetrieveURL) }),
      })),
      failed: sequence(TAG.FailedSOPSequence).map((item) => {
        const code = str(item, TAG.FailureReason) ?? '';
        return { sopClassUid: str(item, TAG.ReferencedSOPClassUID) ?? '', sopInstanceUid: str(item, TAG.ReferencedSOPInstanceUID) ?? '', reason: FAILURE_REASONS[code] ?? (code ? `failure reason ${code}` : 'no reason given') };
      }),
      warnings: values(reply, TAG.WarningReason).map((code) => FAILURE_REASONS[String(code)] ?? `warning ${String(code)}`),
    };
    if (httpError && outcome.failed.length === 0) throw httpError;
    return outcome;
  }

  /**
   * Checks the base URL and the credentials with the smallest QIDO query there is, and says
   * exactly what failed. Never throws (except when cancelled).
   */
  async testConnection(signal?: AbortSignal): Promise<ConnectionTest> {
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    try {
      const { studies } = await this.searchStudies({ limit: 1 }, signal);
      const who = this.#auth.kind === 'none' ? 'without credentials' : this.#auth.kind === 'basic' ? `as ${this.#auth.user}` : 'with the bearer token';
      return { ok: true, message: `connected to ${this.baseUrl} ${who}: QIDO-RS answered in ${ms()} ms (${studies.length ? 'studies found' : 'no studies yet'})`, studies: studies.length, ms: ms() };
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      const failure = err instanceof PacsError ? err.failure : 'http';
      return { ok: false, failure, message: errorMessage(err), ms: ms() };
    }
  }
}

/** The failure bodies of STOW-RS replies that carry per-instance results (409, 400, 202 are not errors of the request alone). */
const storeBodies = new WeakMap<PacsError, { status: number; body: string }>();

/** multipart/related with one application/dicom part per file (PS3.18 8.6.1.2). */
export function encodeMultipartRelated(files: Uint8Array[], boundary: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const file of files) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\nContent-Length: ${file.byteLength}\r\n\r\n`, 'latin1'), file, Buffer.from('\r\n', 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return Buffer.concat(chunks);
}

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|EPROTO$|HOSTNAME_MISMATCH)/;

/** What a failed fetch means, from the error undici puts in `cause`. */
export function networkFailure(err: unknown, fullUrl: string, timedOutMs?: number): PacsError {
  if (err instanceof PacsError) return err;
  const target = new URL(fullUrl);
  const url = withoutQuery(fullUrl);
  const hostPort = `${target.hostname}:${target.port || (target.protocol === 'https:' ? 443 : 80)}`;
  if (timedOutMs !== undefined || (err as { name?: string })?.name === 'TimeoutError') {
    return new PacsError('timeout', `${url}: no answer from ${hostPort} within ${Math.round((timedOutMs ?? 30_000) / 1000)} s`);
  }
  const cause = ((err as { cause?: unknown })?.cause ?? err) as { code?: string; message?: string; errors?: { code?: string }[] };
  // a host with several addresses (localhost: ::1 and 127.0.0.1) fails with an AggregateError
  const code = cause?.code ?? cause?.errors?.find((e) => e.code)?.code ?? '';
  // OpenSSL's messages carry its source file and line: the reason is the part after the last "routines:"
  const detail = (cause?.message ?? errorMessage(err)).replace(/^[\s\S]*routines:[^:]*:([^:]+):[\s\S]*$/, '$1').trim();
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return new PacsError('dns', `${url}: the host name "${target.hostname}" cannot be resolved (DNS: ${code}); check the address`);
  }
  if (code === 'ECONNREFUSED') return new PacsError('refused', `${url}: connection refused by ${hostPort}; is the PACS running, and is this its port?`);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new PacsError('unreachable', `${url}: ${hostPort} cannot be reached (${code}); check the address and the network`);
  }
  if (TLS_CODE.test(code) || /SSL|TLS|certificate/i.test(detail)) {
    const plain = /wrong version number|packet length too long|http request/i.test(detail) ? '; the server seems to speak plain HTTP: try http://' : '';
    return new PacsError('tls', `${url}: the TLS (https) handshake with ${hostPort} failed (${code || 'TLS'}: ${detail})${plain}`);
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') {
    return new PacsError('connection', `${url}: ${hostPort} closed the connection (${code})${target.protocol === 'http:' ? '; if the PACS wants https, use https://' : ''}`);
  }
  return new PacsError('connection', `${url}: the request failed (${code ? `${code}: ` : ''}${detail})`);
}

/** A URL as messages show it: the query (QIDO's includefields) says nothing the user needs. */
const withoutQuery = (url: string) => url.replace(/\?.*$/, '');

function statusFailure(response: { status: number; statusText: string }, fullUrl: string, what: string, body: string, auth: PacsAuth): PacsError {
  const url = withoutQuery(fullUrl);
  const status = response.status;
  const excerpt = body.replace(/\s+/g, ' ').trim().slice(0, 200);
  let error: PacsError;
  if (status === 401) {
    const sent = auth.kind === 'none' ? 'no credentials were sent: the PACS wants a user and password or a token' : auth.kind === 'basic' ? `the user "${auth.user}" or the password is wrong` : 'the bearer token was refused (wrong or expired)';
    error = new PacsError('auth', `${url}: 401 Unauthorized: ${sent}`, status);
  } else if (status === 403) {
    error = new PacsError('forbidden', `${url}: 403 Forbidden: the credentials are valid but may not do ${what}`, status);
  } else if (status === 404 && /QIDO/.test(what)) {
    error = new PacsError('not-found', `${url}: 404 Not Found on the QIDO-RS path: no DICOMweb service at ${new URL(url).pathname.replace(/\/(studies|series|instances).*$/, '') || '/'}; check the base URL (Orthanc: http://host:8042/dicom-web)`, status);
  } else if (status === 404) {
    error = new PacsError('not-found', `${url}: 404 Not Found (${what})`, status);
  } else {
    error = new PacsError('http', `${url}: HTTP ${status} ${response.statusText} during ${what}${excerpt ? `: ${excerpt}` : ''}`, status);
  }
  if (/STOW/.test(what) && (status === 409 || status === 400 || status === 202)) storeBodies.set(error, { status, body });
  return error;
}

/** Whether the parser has met the close delimiter (its finish() throws until then, and says nothing else). */
function multipartComplete(parser: MultipartParser): boolean {
  try {
    parser.finish();
    return true;
  } catch {
    return false;
  }
}
