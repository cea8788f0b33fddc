/**
 * Acceptance of issue 17 against a real PACS: Debian's Orthanc with its DICOMweb plugin, started
 * here on a free loopback port with its own configuration (authentication on), loaded with the
 * shared phantom's FLAIR series through Orthanc's REST API, and stopped afterwards.
 * - search finds the uploaded series; fetching it gives the volume the same files give from disk,
 *   voxel for voxel and in the same geometry; a four-sequence study fetched from the PACS is
 *   assembled as the same files are from a folder;
 * - `segment pacs://… --store` stores the DICOM SEG and the PDF report, which read back through
 *   QIDO-RS and WADO-RS: the SEG equals the labels written, the PDF the report;
 * - a stopped server, a wrong password, a wrong path and https against plain HTTP each say so;
 * - a fetch cancelled half-way leaves only whole instances in the cache (and a new fetch takes
 *   only what is missing);
 * - opening from the PACS (the instances parsed as they arrive, the study assembled in memory,
 *   the cache written afterwards) gives what the same files give from a folder: series and
 *   four-sequence study alike, cold, warm and after a cancelled open.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { findBratsCases, loadBratsCase } from '../../../main/core/io/brats.ts';
import { readEncapsulatedPdf } from '../../../main/core/io/dicom-pdf.ts';
import { readDicomSeg } from '../../../main/core/io/dicom-seg.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { parseDicomBuffer } from '../../../main/core/io/dicom/dataset.ts';
import { CancelledError } from '../../../main/core/errors.ts';
import { InstanceCache } from '../../../main/core/pacs/cache.ts';
import { DicomWebClient } from '../../../main/core/pacs/dicomweb.ts';
import { openPacsStudy } from '../../../main/core/pacs/open-study.ts';
import { retrieveStudy } from '../../../main/core/pacs/retrieve.ts';
import { freePort, haveOrthanc, orthancMissing, readFiles, slowLink, startOrthanc, type OrthancServer } from '../../fixtures/orthanc.ts';
import { slab, writeMrSeries } from '../../fixtures/dicom/write-series.ts';

const shared = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const flairDir = join(shared, 'BraTS20_Training_001_flair_dicom');
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-pacs-'));
// the engine caches built graphs, the CLI its PACS instances: keep both out of the user's folders
process.env.SAM2UNET_CACHE = join(tmp, 'engine-cache');
process.env.SAM2UNET_PACS_CACHE = join(tmp, 'cli-pacs-cache');
if (!haveOrthanc) console.warn(orthancMissing);

let orthanc: OrthancServer;
let client: DicomWebClient;
let flairStudyUid: string;
const fourDir = join(tmp, 'four');
const FOUR_STUDY = '1.2.826.0.1.3680043.8.498.4400';

beforeAll(async () => {
  if (!haveOrthanc) return;
  orthanc = await startOrthanc();
  client = new DicomWebClient(`${orthanc.dicomWeb}/`, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } });
  const files = readdirSync(flairDir).filter((f) => f.endsWith('.dcm')).map((f) => join(flairDir, f));
  expect(await orthanc.upload(readFiles(files))).toBe(155);
  // the phantom's four sequences as one DICOM study (slices 60–79 of each: enough to assemble, quick to upload)
  const phantom = join(shared, 'BraTS20_Training_002');
  const study = await loadBratsCase(findBratsCases(phantom, readdirSync(phantom)).cases[0]!);
  mkdirSync(fourDir);
  const series = [
    { role: 't1', description: 'AX T1 SE', number: 3 },
    { role: 't1ce', description: 'AX T1 POST GAD', number: 7 },
    { role: 't2', description: 'Ax T2 TSE', number: 4 },
    { role: 'flair', description: 'AX T2 FLAIR', number: 5 },
  ] as const;
  const written: string[] = [];
  for (const s of series) {
    const part = slab(study.sequences[s.role]!, 60, 20);
    written.push(...writeMrSeries(fourDir, part, { description: s.description, seriesNumber: s.number, seriesUid: `${FOUR_STUDY}.${s.number}`, studyUid: FOUR_STUDY, patientName: 'Four^Sequences', patientId: 'FOUR002' }, (k) => `IM${String(k).padStart(4, '0')}${s.number}`));
  }
  expect(await orthanc.upload(readFiles(written))).toBe(80);
  const found = await client.searchStudies({ patientId: 'PHANTOM001' });
  flairStudyUid = found.studies[0]!.studyUid;
}, 120_000);

afterAll(async () => {
  await orthanc?.stop();
  rmSync(tmp, { recursive: true, force: true });
});


async function cli(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), interactive: false });
  return { code, stdout, stderr };
}

function withCredentials<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return fn().finally(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}
const credentials = () => ({ SAM2UNET_PACS_USER: orthanc.user, SAM2UNET_PACS_PASSWORD: orthanc.password, SAM2UNET_PACS_TOKEN: undefined });

/** Every file under `root`, and that each is the whole instance the PACS holds (Orthanc keeps the files as uploaded). */
function cachedFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else files.push(join(dir, entry.name));
    }
  };
  if (existsSync(root)) walk(root);
  expect(files.filter((f) => !f.endsWith('.dcm'))).toEqual([]);
  for (const file of files) expect(readFileSync(file).equals(flairFiles().get(file.split('/').at(-1)!.slice(0, -4))!), file).toBe(true);
  return files;
}

let flairBySop: Map<string, Buffer> | undefined;
/** the phantom's FLAIR files by SOP Instance UID */
function flairFiles(): Map<string, Buffer> {
  if (flairBySop) return flairBySop;
  flairBySop = new Map();
  for (const f of readdirSync(flairDir).filter((n) => n.endsWith('.dcm'))) {
    const bytes = readFileSync(join(flairDir, f));
    flairBySop.set(parseDicomBuffer(bytes, f).string('SOPInstanceUID')!, bytes);
  }
  return flairBySop;
}

function expectSameVolume(a: Volume, b: Volume): void {
  expect(a.dims).toEqual(b.dims);
  expect(a.geometry.spacing).toEqual(b.geometry.spacing);
  expect(a.geometry.origin).toEqual(b.geometry.origin);
  expect(a.geometry.direction).toEqual(b.geometry.direction);
  expect([a.slope, a.intercept, a.dtype]).toEqual([b.slope, b.intercept, b.dtype]);
  expect(a.data.length).toBe(b.data.length);
  let differing = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) differing++;
  expect(differing).toBe(0);
}

describe.skipIf(!haveOrthanc)('a PACS (Orthanc + DICOMweb) started by the test', () => {
  it('finds the uploaded phantom series by patient, date, modality and description (QIDO-RS), paged', async () => {
    const byName = await client.searchStudies({ patientName: 'phantom' });
    expect(byName.studies.map((s) => s.patientId)).toEqual(['PHANTOM001']);
    const study = byName.studies[0]!;
    expect(study).toMatchObject({ patientName: 'Phantom^Brain', studyDate: '20261126', modalities: ['MR'], instances: 155, series: 1 });
    expect((await client.searchStudies({ studyDate: '20261101-20261130', modality: 'MR' })).studies.map((s) => s.patientId).sort()).toEqual(['FOUR002', 'PHANTOM001']);
    expect((await client.searchStudies({ studyDate: '20250101-20251231' })).studies).toEqual([]);
    const page1 = await client.searchStudies({ limit: 1 });
    const page2 = await client.searchStudies({ limit: 1, offset: 1 });
    expect([page1.more, page2.more]).toEqual([true, false]);
    expect(page1.studies[0]!.studyUid).not.toBe(page2.studies[0]!.studyUid);
    const series = await client.searchSeries(study.studyUid);
    expect(series.map((s) => [s.modality, s.description, s.instances])).toEqual([['MR', 'FLAIR', 155]]);

    const found = await withCredentials(credentials(), () => cli('pacs', 'search', '--pacs', orthanc.dicomWeb, '--patient', 'PHANTOM001', '--with-series', '--json'));
    expect(found.code, found.stderr).toBe(0);
    const json = JSON.parse(found.stdout) as { studies: { studyUid: string; seriesList: { description: string; instances: number }[] }[] };
    expect(json.studies.map((s) => [s.studyUid, s.seriesList.map((x) => [x.description, x.instances])])).toEqual([[study.studyUid, [['FLAIR', 155]]]]);
  });

  it('fetches the series into the cache and reads it voxel for voxel as the same files from disk', async () => {
    const cache = new InstanceCache(join(tmp, 'cache-same'), 2 ** 30);
    const progress: number[] = [];
    const fetched = await retrieveStudy(client, cache, { studyUid: flairStudyUid, imagesOnly: true, onProgress: (p) => progress.push(p.instances) });
    expect(fetched.instances).toBe(155);
    expect(fetched.bytes).toBeGreaterThan(155 * 100_000);
    expect(progress.at(-1)).toBe(155);
    const [fromPacs, fromDisk] = [await openPath(fetched.folder), await openPath(flairDir)];
    expect(fromPacs.studies).toHaveLength(1);
    expect(fromPacs.studies[0]!.name).toBe(fromDisk.studies[0]!.name);
    expectSameVolume(Object.values(fromPacs.studies[0]!.sequences)[0]!, Object.values(fromDisk.studies[0]!.sequences)[0]!);
    // a second open comes from the cache
    const again = await retrieveStudy(client, cache, { studyUid: flairStudyUid });
    expect([again.cachedInstances, again.bytes]).toEqual([155, 0]);

    // the CLI writes <out>/<series>/<sop>.dcm, the files the PACS holds
    const out = join(tmp, 'fetched');
    const run = await withCredentials(credentials(), () => cli('pacs', 'fetch', flairStudyUid, '--pacs', orthanc.dicomWeb, '--out', out));
    expect(run.code, run.stderr).toBe(0);
    const seriesDirs = readdirSync(out);
    expect(seriesDirs).toHaveLength(1);
    expect(readdirSync(join(out, seriesDirs[0]!))).toHaveLength(155);
    expectSameVolume(Object.values((await openPath(out)).studies[0]!.sequences)[0]!, Object.values(fromDisk.studies[0]!.sequences)[0]!);
  });

  it('assembles a four-sequence study fetched from the PACS as the same files from a folder', async () => {
    const cache = new InstanceCache(join(tmp, 'cache-four'), 2 ** 30);
    const fetched = await retrieveStudy(client, cache, { studyUid: FOUR_STUDY, imagesOnly: true });
    expect(fetched.series.map((s) => s.description)).toEqual(['AX T1 SE', 'Ax T2 TSE', 'AX T2 FLAIR', 'AX T1 POST GAD']);
    const [fromPacs, fromDisk] = [await openPath(fetched.folder), await openPath(fourDir)];
    expect(fromPacs.studies).toHaveLength(1);
    const [a, b] = [fromPacs.studies[0]!, fromDisk.studies[0]!];
    expect(Object.keys(a.sequences)).toEqual(['t1', 't1ce', 't2', 'flair']);
    expect(a.series!.map((s) => [s.description, s.role])).toEqual(b.series!.map((s) => [s.description, s.role]));
    for (const role of Object.keys(b.sequences)) expectSameVolume(a.sequences[role]!, b.sequences[role]!);
  });

  it('opens the series from the instances as they arrive, as the same files open from a folder, and caches them afterwards', async () => {
    const root = join(tmp, 'cache-open');
    const cache = new InstanceCache(root, 2 ** 30);
    const progress: number[] = [];
    const opened = await openPacsStudy(client, cache, { studyUid: flairStudyUid, onProgress: (p) => progress.push(p.instances) });
    const fromDisk = await openPath(flairDir);
    expect(opened.fetched).toMatchObject({ instances: 155, cachedInstances: 0, series: 1 });
    expect(progress.at(-1)).toBe(155);
    expect(opened.notes).toEqual([]);
    expect(opened.studies).toHaveLength(1);
    const [a, b] = [opened.studies[0]!, fromDisk.studies[0]!];
    expect([a.name, a.kind, a.metadata, Object.keys(a.sequences)]).toEqual([b.name, b.kind, b.metadata, Object.keys(b.sequences)]);
    const [va, vb] = [Object.values(a.sequences)[0]!, Object.values(b.sequences)[0]!];
    expectSameVolume(va, vb);
    // the same series metadata (ids, UIDs in slice order, tags kept); only the files differ: the cache's
    const { sources: fromCache, ...metaA } = va.meta;
    const { sources: fromFolder, ...metaB } = vb.meta;
    expect(metaA).toEqual(metaB);
    expect(fromCache.map((f) => f.split('/').at(-1))).toEqual(fromFolder.map((f) => `${parseDicomBuffer(readFileSync(f), f).string('SOPInstanceUID')}.dcm`));
    expect(fromCache.every((f) => f.startsWith(`${cache.seriesDir(flairStudyUid, va.meta.id)}/`))).toBe(true);
    // the open did not wait for the cache; the writes come after, whole
    expect(cachedFiles(root)).toEqual([]);
    expect(await opened.writeCache()).toEqual([]);
    expect(cachedFiles(root).sort()).toEqual([...fromCache].sort());
    // the next open finds it all cached and reads the files as a folder's
    const warm = await openPacsStudy(client, new InstanceCache(root, 2 ** 30), { studyUid: flairStudyUid });
    expect(warm.fetched).toMatchObject({ instances: 155, cachedInstances: 155, bytes: 0 });
    expectSameVolume(Object.values(warm.studies[0]!.sequences)[0]!, vb);
  });

  it('opens a four-sequence study from the PACS as the same files from a folder', async () => {
    const opened = await openPacsStudy(client, new InstanceCache(join(tmp, 'cache-open-four'), 2 ** 30), { studyUid: FOUR_STUDY });
    const fromDisk = await openPath(fourDir);
    expect(opened.studies).toHaveLength(1);
    expect(opened.notes).toEqual(fromDisk.notes);
    const [a, b] = [opened.studies[0]!, fromDisk.studies[0]!];
    expect([a.name, a.metadata, Object.keys(a.sequences)]).toEqual([b.name, b.metadata, ['t1', 't1ce', 't2', 'flair']]);
    expect(a.series!.map((s) => [s.id, s.description, s.role, s.recognised, s.resampled])).toEqual(b.series!.map((s) => [s.id, s.description, s.role, s.recognised, s.resampled]));
    for (const role of Object.keys(b.sequences)) expectSameVolume(a.sequences[role]!, b.sequences[role]!);
    await opened.writeCache();
  });

  it('segments pacs://<study> and stores the DICOM SEG and the PDF report, which read back equal', async () => {
    const out = join(tmp, 'segmented');
    const run = await withCredentials(credentials(), () => cli('segment', `pacs://${flairStudyUid}`, '--pacs', orthanc.dicomWeb, '--store', '--out', out, '--device', 'cpu', '--channels', 'flair,flair,flair'));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/stored DICOM SEG .*\nstored PDF report/);
    const written = readdirSync(out);
    const segFile = written.find((f) => f.endsWith('_pred_seg.dcm'))!;
    const predFile = written.find((f) => f.endsWith('_pred.nii.gz'))!;
    expect(segFile).toBeTruthy();

    // read back through QIDO-RS and WADO-RS
    const series = await client.searchSeries(flairStudyUid);
    expect(series.map((s) => s.modality).sort()).toEqual(['DOC', 'MR', 'SEG']);
    const segSeries = series.find((s) => s.modality === 'SEG')!;
    const [segInstance] = await client.searchInstances(flairStudyUid, segSeries.seriesUid);
    const segBytes = await client.retrieveInstance(segInstance!);
    const readBack = join(tmp, 'read-back_seg.dcm');
    (await import('node:fs')).writeFileSync(readBack, segBytes);
    const source = Object.values((await openPath(flairDir)).studies[0]!.sequences)[0]!;
    const seg = await readDicomSeg(readBack, source);
    expect(seg.referencedSeriesUid).toBe(source.meta.id);
    const labels = (await readNifti(join(out, predFile))).volumes[0]!;
    const expected = labels.data as Uint8Array;
    let tumour = 0;
    let differing = 0;
    for (let i = 0; i < expected.length; i++) {
      if (expected[i]) tumour++;
      if (seg.labels.data[i] !== expected[i]) differing++;
    }
    expect(tumour).toBeGreaterThan(1000);
    expect(differing).toBe(0);

    const docSeries = series.find((s) => s.modality === 'DOC')!;
    const [pdfInstance] = await client.searchInstances(flairStudyUid, docSeries.seriesUid);
    const pdf = readEncapsulatedPdf(await client.retrieveInstance(pdfInstance!), 'report read back');
    expect(pdf.studyUid).toBe(flairStudyUid);
    expect(Buffer.from(pdf.pdf).equals(readFileSync(join(out, 'report.pdf')))).toBe(true);
    expect(pdf.sources).toContain(seg.sopInstanceUid);
    expect(pdf.sources).toContain(source.meta.sopInstanceUids![0]);

    // opening the study again leaves the SEG and the report out (no images), with a note
    const reopened = await retrieveStudy(client, new InstanceCache(join(tmp, 'cache-reopen'), 2 ** 30), { studyUid: flairStudyUid, imagesOnly: true });
    expect(reopened.instances).toBe(155);
    expect(reopened.notes.join('\n')).toMatch(/SEG.*no images[\s\S]*DOC.*no images|DOC.*no images[\s\S]*SEG.*no images/);
  }, 240_000);

  it('reports per instance what the PACS refused to store', async () => {
    const segFile = readdirSync(join(tmp, 'segmented')).find((f) => f.endsWith('_pred_seg.dcm'))!;
    const bytes = new Uint8Array(readFileSync(join(tmp, 'segmented', segFile)));
    // into another study than its own: the PACS must refuse it
    const outcome = await client.store([bytes], { studyUid: FOUR_STUDY });
    expect(outcome.stored).toEqual([]);
    expect(outcome.failed).toHaveLength(1);
    expect(outcome.failed[0]!.sopInstanceUid).toMatch(/^2\.25\./);
    expect(outcome.failed[0]!.reason).toMatch(/\S/);
  });

  it('says clearly what failed: stopped server, wrong password, wrong path, https against http', async () => {
    const stopped = await new DicomWebClient(`http://127.0.0.1:${await freePort()}/dicom-web`).testConnection();
    expect(stopped).toMatchObject({ ok: false, failure: 'refused' });
    expect(stopped.message).toMatch(/connection refused by 127\.0\.0\.1:\d+; is the PACS running/);
    const wrongPassword = await new DicomWebClient(orthanc.dicomWeb, { auth: { kind: 'basic', user: orthanc.user, password: 'wrong' } }).testConnection();
    expect(wrongPassword).toMatchObject({ ok: false, failure: 'auth' });
    expect(wrongPassword.message).toMatch(/401 Unauthorized: the user "radiologist" or the password is wrong/);
    const noCredentials = await new DicomWebClient(orthanc.dicomWeb).testConnection();
    expect(noCredentials.message).toMatch(/no credentials were sent/);
    const wrongPath = await new DicomWebClient(`${orthanc.origin}/dicomweb`, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } }).testConnection();
    expect(wrongPath).toMatchObject({ ok: false, failure: 'not-found' });
    expect(wrongPath.message).toMatch(/404 Not Found on the QIDO-RS path: no DICOMweb service at \/dicomweb/);
    const tls = await new DicomWebClient(orthanc.dicomWeb.replace('http:', 'https:')).testConnection();
    expect(tls).toMatchObject({ ok: false, failure: 'tls' });
    expect(tls.message).toMatch(/TLS \(https\) handshake .* failed .*try http:\/\//);
    const ok = await client.testConnection();
    expect(ok).toMatchObject({ ok: true });

    // the CLI: one line, non-zero status
    const cliWrong = await withCredentials({ ...credentials(), SAM2UNET_PACS_PASSWORD: 'wrong' }, () => cli('pacs', 'search', '--pacs', orthanc.dicomWeb));
    expect(cliWrong.code).toBe(2);
    expect(cliWrong.stderr).toMatch(/^sam2unet: .*401 Unauthorized: the user "radiologist" or the password is wrong\n$/);
    const cliTest = await withCredentials(credentials(), () => cli('pacs', 'test', '--pacs', `${orthanc.origin}/wrong-root/`));
    expect(cliTest.code).toBe(1);
    expect(cliTest.stdout).toMatch(/failed \(not-found\): .*\/wrong-root\/studies: 404/);
  });

  it('a fetch cancelled half-way leaves only whole instances in the cache, and the next fetch takes only what is missing', async () => {
    const checkCache = (root: string) => cachedFiles(root).length;
    // the cancels go through a slow link: on loopback a transfer can end within one 50 ms progress interval
    const slow = await slowLink(orthanc.origin);
    const slowClient = new DicomWebClient(`${slow.origin}/dicom-web`, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } });
    try {
      /** runs a fetch into a fresh cache at `root`, cancels it in the middle of the transfer (while requests or the stream are in flight), and returns how many instances it kept */
      const cancelHalfWay = async (root: string, fetch: (cache: InstanceCache, cancel: { signal: AbortSignal; onProgress: (p: { bytes: number }) => void }) => Promise<unknown>) => {
        const controller = new AbortController();
        const cancelled = await fetch(new InstanceCache(root, 2 ** 30), { signal: controller.signal, onProgress: (p) => p.bytes > 8_000_000 && controller.abort() }).catch((err: unknown) => err);
        expect(cancelled).toBeInstanceOf(CancelledError);
        const kept = checkCache(root);
        expect(kept).toBeGreaterThan(10);
        expect(kept).toBeLessThan(155);
        return kept;
      };
      for (const mode of ['auto', 'instances'] as const) {
        const root = join(tmp, `cache-cancel-${mode}`);
        const kept = await cancelHalfWay(root, (cache, cancel) => retrieveStudy(slowClient, cache, { studyUid: flairStudyUid, imagesOnly: true, mode, concurrency: 4, ...cancel }));
        const resumed = await retrieveStudy(client, new InstanceCache(root, 2 ** 30), { studyUid: flairStudyUid, imagesOnly: true });
        expect([resumed.instances, resumed.cachedInstances]).toEqual([155, kept]);
        expect(checkCache(root)).toBe(155);
      }

      // an open from the PACS, cancelled: what arrived is written, whole, before the cancellation is reported
      const root = join(tmp, 'cache-cancel-open');
      const kept = await cancelHalfWay(root, (cache, cancel) => openPacsStudy(slowClient, cache, { studyUid: flairStudyUid, ...cancel }));
      const resumed = await openPacsStudy(client, new InstanceCache(root, 2 ** 30), { studyUid: flairStudyUid });
      expect([resumed.fetched.instances, resumed.fetched.cachedInstances]).toEqual([155, kept]);
      expectSameVolume(Object.values(resumed.studies[0]!.sequences)[0]!, Object.values((await openPath(flairDir)).studies[0]!.sequences)[0]!);
      await resumed.writeCache();
      expect(checkCache(root)).toBe(155);
    } finally {
      await slow.close();
    }
  });

  it('keeps the cache within its size limit, least recently used first, never the study being fetched', async () => {
    const root = join(tmp, 'cache-small');
    // room for about 100 instances of 116 KB
    const cache = new InstanceCache(root, 12_000_000);
    const four = await retrieveStudy(client, cache, { studyUid: FOUR_STUDY });
    expect(four.instances).toBe(80);
    const flair = await retrieveStudy(client, cache, { studyUid: flairStudyUid, imagesOnly: true });
    // the 155 FLAIR instances (18 MB) were pinned while fetched: all there; the older study made room
    expect(readdirSync(flair.folder).flatMap((s) => readdirSync(join(flair.folder, s)))).toHaveLength(155);
    expect(existsSync(cache.studyDir(FOUR_STUDY))).toBe(false);
    const size = await cache.size();
    expect(size.instances).toBe(155);
    // the next fetch evicts from the least recently used side: the FLAIR goes before what it fetches
    await retrieveStudy(client, cache, { studyUid: FOUR_STUDY });
    expect((await cache.size()).bytes).toBeLessThanOrEqual(12_000_000);
    expect(existsSync(cache.studyDir(FOUR_STUDY))).toBe(true);
  });
});
