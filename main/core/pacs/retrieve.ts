/**
 * Fetching a study or a series from a PACS into the instance cache. The result is a folder of
 * the cache that the project's DICOM reader opens like any folder, so a PACS study is assembled
 * (four sequences, resampling, notes) exactly as the same files on disk would be.
 *
 * How: a series of which nothing is cached comes in one streamed WADO-RS reply (each instance
 * written to the cache as soon as its part has arrived); a series partly cached (a fetch that
 * was cancelled, an evicted instance) is listed through QIDO-RS and only its missing instances
 * are retrieved, one request each. Requests run in parallel, at most `concurrency` at a time.
 * Why not always one request per instance: against Orthanc on loopback, 155 instance requests
 * took 270–560 ms where the series in one reply took 70 ms (the server's per-request work
 * dominates); a reopen or a resumed fetch still moves only what is missing.
 * Every instance is checked (a DICOM file of the study and series asked for, with the SOP
 * Instance UID it claims) before it is written, atomically, under its SOP Instance UID; with
 * `keep`, that one parse is kept so the study opens from memory (open-study.ts).
 */
import { CancelledError, UserError, errorMessage } from '../errors.ts';
import { DicomDataset, parseDicomBuffer } from '../io/dicom/dataset.ts';
import type { InstanceCache } from './cache.ts';
import { PacsError, type DicomWebClient, type PacsInstance, type PacsSeries } from './dicomweb.ts';

/** Series that hold no images to open (segmentations, reports, documents, presentation states, key objects). */
export const NON_IMAGE_MODALITIES = new Set(['SEG', 'SR', 'DOC', 'PR', 'KO', 'RTSTRUCT', 'RTPLAN', 'RTDOSE', 'REG', 'PLAN', 'FID']);

export interface RetrieveProgress {
  /** instances in hand (fetched or found in the cache) */
  instances: number;
  totalInstances: number;
  /** bytes received from the server plus bytes found in the cache */
  bytes: number;
  cachedInstances: number;
}

export interface RetrieveOptions {
  studyUid: string;
  /** one series only; absent: the whole study */
  seriesUid?: string;
  /** leave out series that hold no images (SEG, SR, DOC …): what opening a study wants; `pacs fetch` keeps everything */
  imagesOnly?: boolean;
  /** requests in flight at once (default 6, as browsers allow per host) */
  concurrency?: number;
  /** 'instances': one request per instance even for a series of which nothing is cached (the bench compares both) */
  mode?: 'auto' | 'instances';
  /** keep the instances fetched now, parsed (RetrieveResult.parsed): opening them then needs no second read */
  keep?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: RetrieveProgress) => void;
}

export interface RetrieveResult {
  /** the cache folder of the study (or of the series) */
  folder: string;
  files: string[];
  series: PacsSeries[];
  instances: number;
  /** bytes received from the server */
  bytes: number;
  cachedInstances: number;
  notes: string[];
  ms: number;
  /**
   * With `keep`: the instances fetched by this call, parsed once as they arrived, each named by
   * its cache file (its bytes are those of the file); the instances found in the cache are in
   * `files` only.
   */
  parsed?: DicomDataset[];
  /**
   * With `keep`: writes the fetched instances into the cache, once, when the caller is ready
   * (after opening them); settles with what could not be written (never rejects). Until then
   * they stay pinned; the caller must call it.
   */
  writeCache?: () => Promise<string[]>;
}

/**
 * Fetches what is not cached yet; resolves when every instance is in the cache (with `keep`: in
 * hand, parsed, their cache writes under way; `written` says when they are done), or throws
 * (CancelledError when cancelled) once what arrived is in the cache.
 */
export async function retrieveStudy(client: DicomWebClient, cache: InstanceCache, options: RetrieveOptions): Promise<RetrieveResult> {
  const started = performance.now();
  const { studyUid, seriesUid, signal } = options;
  const notes: string[] = [];
  const allSeries = await client.searchSeries(studyUid, signal);
  // an earlier open of this study may still be writing it into the cache: what is cached is then whole
  await cache.settled(cache.studyDir(studyUid));
  if (allSeries.length === 0) throw new PacsError('not-found', `${client.baseUrl}: no study ${studyUid} (or it has no series)`);
  let series = seriesUid ? allSeries.filter((s) => s.seriesUid === seriesUid) : allSeries;
  if (seriesUid && series.length === 0) throw new PacsError('not-found', `${client.baseUrl}: study ${studyUid} has no series ${seriesUid}`);
  if (options.imagesOnly && !seriesUid) {
    const skipped = series.filter((s) => s.modality && NON_IMAGE_MODALITIES.has(s.modality.toUpperCase()));
    for (const s of skipped) notes.push(`left out series${s.number !== undefined ? ` ${s.number}` : ''} "${s.description ?? s.seriesUid}" (${s.modality}): no images to open`);
    series = series.filter((s) => !skipped.includes(s));
    if (series.length === 0) throw new UserError(`study ${studyUid} holds no image series (only ${skipped.map((s) => s.modality).join(', ')})`);
  }

  // which series come whole in one reply, which instance by instance, and which are all cached
  const streamed: PacsSeries[] = [];
  const listed: PacsSeries[] = [];
  const wholeFiles: Awaited<ReturnType<InstanceCache['seriesFiles']>>[] = [];
  for (const s of series) {
    const cached = await cache.seriesFiles(studyUid, s.seriesUid);
    // as many cached as the PACS counts: taken as complete without listing them (Orthanc takes
    // 0.1–0.5 s to list a series' instances, more than the whole reopen otherwise)
    if (s.instances !== undefined && cached.length === s.instances) wholeFiles.push(cached);
    else if (options.mode !== 'instances' && s.instances !== undefined && cached.length === 0) streamed.push(s);
    else listed.push(s);
  }
  const instances: PacsInstance[] = (await Promise.all(listed.map((s) => client.searchInstances(studyUid, s.seriesUid, signal)))).flat();
  const total = instances.length + streamed.reduce((n, s) => n + s.instances!, 0) + wholeFiles.reduce((n, f) => n + f.length, 0);
  if (total === 0) throw new PacsError('not-found', `${client.baseUrl}: study ${studyUid} lists no instances`);

  const progress: RetrieveProgress = { instances: 0, totalInstances: total, bytes: 0, cachedInstances: 0 };
  const files: string[] = [];
  const parsed: DicomDataset[] = [];
  let fetchedBytes = 0;
  let lastReport = 0;
  const report = (force = false) => {
    const now = performance.now();
    // at most 20 reports a second: a progress bar needs no more, an IPC channel wants fewer
    if (!force && now - lastReport < 50) return;
    lastReport = now;
    options.onProgress?.({ ...progress, totalInstances: Math.max(progress.totalInstances, progress.instances) });
  };
  for (const entries of wholeFiles) {
    for (const entry of entries) {
      files.push(entry.path);
      progress.instances++;
      progress.cachedInstances++;
      progress.bytes += entry.bytes;
    }
  }
  report(true);
  const onBytes = (n: number) => {
    progress.bytes += n;
    fetchedBytes += n;
    report();
  };

  const unpins = [cache.pin(instances.map((i) => i.sopInstanceUid)), cache.pin(wholeFiles.flat().map((e) => e.uid))];
  const unpinAll = () => {
    for (const unpin of unpins.splice(0)) unpin();
  };
  // one controller for this retrieval: the first failure stops the requests still in flight
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal?.addEventListener('abort', stop, { once: true });
  // with `keep`, cache writes wait until the caller has opened the instances, then go on behind
  // it: creating 155 files costs 0.01–1.5 ms each depending on the file system's load, an open
  // must not wait for that, and the transfer and the assembly go fastest with nothing else
  // competing for the cores; a failed write only means a cache miss next time
  const behind: { studyUid: string; seriesUid: string; sop: string; bytes: Uint8Array }[] = [];
  let writing: Promise<string[]> | undefined;
  const writeBehind = () => (writing ??= writeAll());
  const writeAll = async (): Promise<string[]> => {
    const failures: string[] = [];
    const writer = async () => {
      for (let item = behind.shift(); item; item = behind.shift()) {
        await cache.put(item.studyUid, item.seriesUid, item.sop, item.bytes).catch((err: unknown) => failures.push(errorMessage(err)));
      }
    };
    await Promise.all(Array.from({ length: 4 }, writer));
    unpinAll();
    return failures;
  };
  /** Checks an instance and takes it: into the cache (the promise), or with `keep` into `parsed`, its write queued. */
  const store = (bytes: Uint8Array, studyUid: string, seriesUid: string, sopInstanceUid?: string): Promise<void> | undefined => {
    const ds = checkInstance(bytes, { studyUid, seriesUid, sopInstanceUid }, client.baseUrl);
    const sop = ds.string('SOPInstanceUID')!;
    if (controller.signal.aborted) throw new CancelledError();
    unpins.push(cache.pin([sop]));
    const path = cache.pathOf(studyUid, seriesUid, sop);
    const taken = () => {
      files.push(path);
      progress.instances++;
      report();
    };
    if (!options.keep) return cache.put(studyUid, seriesUid, sop, bytes).then(taken);
    behind.push({ studyUid, seriesUid, sop, bytes });
    // the parse that checked it, renamed after the file it becomes (errors and tags name that file)
    parsed.push(new DicomDataset(ds.raw, path));
    taken();
    return undefined;
  };
  const tasks: (() => Promise<void>)[] = [
    ...streamed.map((s) => async () => {
      // without `keep`, a few writes are in flight while the next parts arrive (retrieveSeries pauses beyond that)
      const count = await client.retrieveSeries(studyUid, s.seriesUid, (bytes) => store(bytes, studyUid, s.seriesUid), { signal: controller.signal, onBytes });
      if (count !== s.instances) notes.push(`series "${s.description ?? s.seriesUid}": the PACS listed ${s.instances} instances and sent ${count}`);
    }),
    ...instances.map((instance) => async () => {
      const cached = await cache.get(instance.studyUid, instance.seriesUid, instance.sopInstanceUid);
      if (cached) {
        files.push(cached.path);
        progress.cachedInstances++;
        progress.instances++;
        progress.bytes += cached.bytes;
        report();
        return;
      }
      const bytes = await client.retrieveInstance(instance, { signal: controller.signal, onBytes });
      await store(bytes, instance.studyUid, instance.seriesUid, instance.sopInstanceUid);
    }),
  ];
  try {
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (next < tasks.length && failure === undefined) {
        const task = tasks[next++]!;
        try {
          await task();
        } catch (err) {
          if (failure === undefined) failure = err;
          controller.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 6, 32, tasks.length)) }, worker));
    if (signal?.aborted) throw new CancelledError();
    if (failure !== undefined) throw failure;
  } catch (err) {
    // cancelled or failed: what arrived is in the cache, whole, before the caller hears of it
    await writeBehind();
    throw err;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  if (!options.keep) await writeBehind();
  progress.totalInstances = progress.instances;
  report(true);
  // no eviction now: a study bigger than the whole cache stays until the next fetch needs room
  return {
    folder: seriesUid ? cache.seriesDir(studyUid, seriesUid) : cache.studyDir(studyUid),
    files,
    series,
    instances: progress.instances,
    bytes: fetchedBytes,
    cachedInstances: progress.cachedInstances,
    notes,
    ms: performance.now() - started,
    ...(options.keep ? { parsed, writeCache: writeBehind } : {}),
  };
}

/**
 * A server answering with another instance than the one asked for (or with something that is
 * not DICOM) must not poison the cache. Returns the parsed instance (its SOP Instance UID checked).
 */
function checkInstance(bytes: Uint8Array, expected: { studyUid: string; seriesUid: string; sopInstanceUid?: string }, baseUrl: string): DicomDataset {
  const name = `${baseUrl} series ${expected.seriesUid}`;
  let ds;
  try {
    ds = parseDicomBuffer(bytes, name);
  } catch (err) {
    throw new PacsError('protocol', `${name}: the server sent something that is not a readable DICOM file (${(err as Error).message})`);
  }
  const [sop, study, series] = [ds.string('SOPInstanceUID'), ds.string('StudyInstanceUID'), ds.string('SeriesInstanceUID')];
  if (!sop || (expected.sopInstanceUid && sop !== expected.sopInstanceUid)) throw new PacsError('protocol', `${name}: the server sent instance ${sop ?? '(no SOP Instance UID)'} instead of ${expected.sopInstanceUid ?? 'an instance of the series'}`);
  if (study !== expected.studyUid || series !== expected.seriesUid) throw new PacsError('protocol', `${name}: instance ${sop} belongs to study ${study} series ${series}, not the one asked for`);
  return ds;
}
