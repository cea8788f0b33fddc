/**
 * The PACS side of the command line: a client from `--pacs <url>` (or SAM2UNET_PACS_URL) with the
 * credentials from the environment, the instance cache, fetching a study with a progress bar,
 * and the two hooks `segment` uses for `pacs://<StudyInstanceUID>` and `--store`.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { UserError } from '../core/errors.ts';
import type { Volume } from '../core/io/volume.ts';
import { stringOption, rangedOption, type CommandIO, type OptionSpec, type ParsedArgs } from './command.ts';

export const PACS_URL_OPTION: Record<string, OptionSpec> = {
  pacs: { type: 'string', valueName: 'url', description: 'DICOMweb base URL, e.g. http://localhost:8042/dicom-web (default $SAM2UNET_PACS_URL); credentials from $SAM2UNET_PACS_USER + $SAM2UNET_PACS_PASSWORD or $SAM2UNET_PACS_TOKEN' },
};
export const PACS_CACHE_OPTIONS: Record<string, OptionSpec> = {
  cache: { type: 'string', valueName: 'dir', description: 'instance cache folder (default $SAM2UNET_PACS_CACHE, else the user cache folder)' },
  'cache-size': { type: 'string', valueName: 'size', description: 'cache size limit, least recently used instances evicted first (default 4G)' },
  concurrency: { type: 'string', valueName: 'N', description: 'requests in flight at once (default 6)' },
};

export async function pacsClient(args: ParsedArgs) {
  const [{ DicomWebClient }, { authFromEnv, PACS_ENV }] = await Promise.all([import('../core/pacs/dicomweb.ts'), import('../core/pacs/connection.ts')]);
  const url = stringOption(args, 'pacs') ?? process.env[PACS_ENV.url];
  if (!url) throw new UserError(`--pacs <url> is required (or set ${PACS_ENV.url})`);
  return new DicomWebClient(url, { auth: authFromEnv() });
}

export async function pacsCache(args: ParsedArgs) {
  const [{ InstanceCache, defaultCacheDir, DEFAULT_CACHE_BYTES }, { parseByteSize }] = await Promise.all([import('../core/pacs/cache.ts'), import('../core/util/limits.ts')]);
  const sizeText = stringOption(args, 'cache-size');
  const size = sizeText === undefined ? DEFAULT_CACHE_BYTES : parseByteSize(sizeText);
  if (size === null) throw new UserError(`--cache-size ${sizeText}: not a size (examples: 4G, 500M)`);
  return new InstanceCache(stringOption(args, 'cache') ?? defaultCacheDir(), size);
}

/** Fetches a study (or one series) into the cache with a progress bar; Ctrl-C cancels. */
export async function fetchWithProgress(args: ParsedArgs, io: CommandIO, studyUid: string, opts: { seriesUid?: string; imagesOnly: boolean }) {
  const [client, cache, { retrieveStudy }, { createProgress }, { formatBytes }] = await Promise.all([
    pacsClient(args),
    pacsCache(args),
    import('../core/pacs/retrieve.ts'),
    import('./progress.ts'),
    import('../core/util/limits.ts'),
  ]);
  const concurrency = rangedOption(args, 'concurrency', { integer: true, min: 1, max: 32 }, 6);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  let progress: ReturnType<typeof createProgress> | undefined;
  try {
    const result = await retrieveStudy(client, cache, {
      studyUid,
      ...(opts.seriesUid ? { seriesUid: opts.seriesUid } : {}),
      imagesOnly: opts.imagesOnly,
      concurrency,
      signal: controller.signal,
      onProgress: (p) => {
        progress ??= createProgress(io, `fetching ${studyUid}`, p.totalInstances, { unit: 'instances' });
        progress.update(p.instances, `${formatBytes(p.bytes)}${p.cachedInstances ? `, ${p.cachedInstances} cached` : ''}`);
      },
    });
    progress?.finish(`fetched ${result.instances} instances (${formatBytes(result.bytes)} from ${client.baseUrl}, ${result.cachedInstances} from the cache) in ${(result.ms / 1000).toFixed(1)} s`);
    for (const note of result.notes) io.stderr(`note: ${note}\n`);
    return { client, cache, result };
  } catch (err) {
    progress?.clear();
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export interface PacsStudyRef {
  studyUid: string;
}

/**
 * `segment pacs://<StudyInstanceUID>`: fetches the study's image series into the cache and
 * returns the cache folder to open like any DICOM folder. Other paths pass through untouched.
 */
export async function resolvePacsStudy(studyPath: string, args: ParsedArgs, io: CommandIO): Promise<{ path: string; pacs?: PacsStudyRef }> {
  const match = /^pacs:\/\/(.*)$/i.exec(studyPath);
  if (!match) {
    if (args.values.store) throw new UserError('--store sends results to the PACS the study came from: give the study as pacs://<StudyInstanceUID>');
    return { path: studyPath };
  }
  const { checkUid } = await import('../core/pacs/dicomweb.ts');
  const studyUid = checkUid(match[1]!.replace(/\/+$/, ''), 'StudyInstanceUID');
  const { result } = await fetchWithProgress(args, io, studyUid, { imagesOnly: true });
  return { path: result.folder, pacs: { studyUid } };
}

/** `segment … --store`: the DICOM SEG and the PDF report (Encapsulated PDF) of the run, stored in the source study. */
export async function storeSegmentOutputs(args: ParsedArgs, io: CommandIO, pacs: PacsStudyRef, files: string[], source: Volume): Promise<void> {
  const seg = files.find((f) => f.endsWith('_seg.dcm'));
  const pdf = files.find((f) => basename(f) === 'report.pdf');
  if (!seg || !pdf) throw new UserError(`--store: the run wrote no ${seg ? 'PDF report' : 'DICOM SEG'} to send`);
  const [client, { sendResults }] = await Promise.all([pacsClient(args), import('../core/pacs/send.ts')]);
  io.stderr(`storing the DICOM SEG and the PDF report in study ${pacs.studyUid} on ${client.baseUrl} …\n`);
  const result = await sendResults(client, { seg: new Uint8Array(await readFile(seg)), pdf: new Uint8Array(await readFile(pdf)), source });
  for (const warning of result.warnings) io.stderr(`note: the PACS warns: ${warning}\n`);
  for (const sent of result.sent) io.stderr(`stored ${sent.kind === 'seg' ? 'DICOM SEG' : 'PDF report'} ${sent.sopInstanceUid} (series ${sent.seriesUid})\n`);
}

