/**
 * Opening the 155-instance FLAIR phantom series from a PACS (Orthanc + DICOMweb on loopback,
 * started here) against opening the same files from disk, measured in the same run, alternating:
 * - disk: openPath(<the phantom folder>) — what opening a folder does;
 * - PACS, cold cache: an empty instance cache, retrieveStudy (QIDO-RS series, the series in one
 *   streamed WADO-RS reply, each instance checked and written atomically) + openPath(<cache folder>);
 * - PACS, cold, one request per instance (mode 'instances', 6 in flight): for comparison;
 * - PACS, warm: everything cached already (QIDO-RS series + the cache check + openPath);
 * - Orthanc alone: the series' WADO-RS reply read into memory and dropped (no parsing, no
 *   writes, no opening): the floor any client of this server has.
 * Then the same through the app's service (WorkstationService, as the page calls it: the study is
 * opened by the io worker, disk folder vs pacsOpen with the cache emptied before each cold run).
 * The acceptance bound is PACS cold ≤ 2 × disk. Wall medians of N runs (default 7) after one
 * warm-up of each; CPU time beside them, since this machine is shared (wall time includes waiting
 * for a core, and Orthanc's own CPU time is not counted in ours).
 * Run: npx tsx test/bench/pacs.bench.ts [runs]
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openPath } from '../../main/core/io/open.ts';
import { WorkstationService } from '../../main/core/api-service.ts';
import { InstanceCache } from '../../main/core/pacs/cache.ts';
import { DicomWebClient } from '../../main/core/pacs/dicomweb.ts';
import { retrieveStudy } from '../../main/core/pacs/retrieve.ts';
import { haveOrthanc, orthancMissing, readFiles, startOrthanc } from '../fixtures/orthanc.ts';

if (!haveOrthanc) {
  console.log(orthancMissing);
  process.exit(0);
}
const dir = resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001_flair_dicom');
const runs = Number(process.argv[2] ?? 7);
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-pacs-bench-'));
const orthanc = await startOrthanc();
try {
  await orthanc.upload(readFiles(readdirSync(dir).filter((f) => f.endsWith('.dcm')).map((f) => join(dir, f))));
  const client = new DicomWebClient(orthanc.dicomWeb, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } });
  const studyUid = (await client.searchStudies({ patientId: 'PHANTOM001' })).studies[0]!.studyUid;
  let fresh = 0;
  const warmRoot = join(tmp, 'warm');

  const seriesUid = (await client.searchSeries(studyUid))[0]!.seriesUid;
  const authorization = `Basic ${Buffer.from(`${orthanc.user}:${orthanc.password}`).toString('base64')}`;
  const measures = {
    disk: async () => {
      const { studies } = await openPath(dir);
      return studies[0]!.sequences;
    },
    'pacs cold (series stream)': async () => {
      const cache = new InstanceCache(join(tmp, `cold-${fresh++}`), 2 ** 30);
      const { folder } = await retrieveStudy(client, cache, { studyUid, imagesOnly: true });
      return (await openPath(folder)).studies[0]!.sequences;
    },
    'pacs cold (one request per instance)': async () => {
      const cache = new InstanceCache(join(tmp, `cold-${fresh++}`), 2 ** 30);
      const { folder } = await retrieveStudy(client, cache, { studyUid, imagesOnly: true, mode: 'instances' });
      return (await openPath(folder)).studies[0]!.sequences;
    },
    'orthanc alone (series reply, dropped)': async () => {
      const response = await fetch(`${orthanc.dicomWeb}/studies/${studyUid}/series/${seriesUid}`, { headers: { Authorization: authorization, Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      return (await response.arrayBuffer()).byteLength;
    },
    'pacs warm (all cached)': async () => {
      const { folder, cachedInstances } = await retrieveStudy(client, new InstanceCache(warmRoot, 2 ** 30), { studyUid, imagesOnly: true });
      if (fresh > 0 && cachedInstances !== 155 && cachedInstances !== 0) throw new Error(`warm run found ${cachedInstances} cached`);
      return (await openPath(folder)).studies[0]!.sequences;
    },
  };
  type Name = keyof typeof measures;
  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  // warm-up: module compilation, Orthanc's and the OS's file caches, the warm cache filled
  for (const measure of Object.values(measures)) await measure();
  for (let i = 0; i < runs; i++) {
    for (const [name, measure] of Object.entries(measures) as [Name, () => Promise<unknown>][]) {
      const cpuStarted = process.cpuUsage();
      const started = performance.now();
      await measure();
      (wall[name] ??= []).push(performance.now() - started);
      const used = process.cpuUsage(cpuStarted);
      (cpu[name] ??= []).push((used.user + used.system) / 1000);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const diskMedian = median(wall.disk!);
  console.log(`open the 155-instance FLAIR series (18 MB), ${runs} runs each, alternating; load average ${loadavg()[0]!.toFixed(1)}`);
  for (const name of Object.keys(measures)) {
    const w = median(wall[name]!);
    console.log(`  ${name.padEnd(38)} wall median ${w.toFixed(0).padStart(5)} ms (${(w / diskMedian).toFixed(2)}× disk) [${wall[name]!.map((t) => t.toFixed(0)).join(', ')}]; CPU ${median(cpu[name]!).toFixed(0)} ms`);
  }
  const ratio = median(wall['pacs cold (series stream)']!) / diskMedian;
  console.log(`acceptance (PACS cold ≤ 2× disk): ${ratio.toFixed(2)}× — ${ratio <= 2 ? 'holds' : 'DOES NOT HOLD'} in this run`);

  // the app's path: the service, the study read by the io worker
  const cacheDir = join(tmp, 'service-cache');
  const service = new WorkstationService({ mode: 'web', pacsCacheDir: cacheDir, resolveExportPath: () => tmp, log: () => undefined });
  try {
    const { id: connectionId } = await service.savePacsConnection({ name: 'bench', url: orthanc.dicomWeb, auth: 'basic', user: orthanc.user, secret: orthanc.password });
    let job = 0;
    const app = {
      'app: open the folder': () => service.openStudy({ path: dir }),
      'app: open from the PACS, cold': async () => {
        rmSync(cacheDir, { recursive: true, force: true });
        return service.pacsOpen({ connectionId, studyUid, jobId: `bench-${job++}` });
      },
      'app: open from the PACS, warm': () => service.pacsOpen({ connectionId, studyUid, jobId: `bench-${job++}` }),
    };
    const appWall: Record<string, number[]> = {};
    const close = async (opened: { studies: { id: string }[] }) => {
      for (const study of opened.studies) await service.closeStudy({ studyId: study.id });
    };
    for (const measure of Object.values(app)) await close(await measure());
    for (let i = 0; i < runs; i++) {
      for (const [name, measure] of Object.entries(app)) {
        const started = performance.now();
        const opened = await measure();
        (appWall[name] ??= []).push(performance.now() - started);
        await close(opened);
      }
    }
    const folder = median(appWall['app: open the folder']!);
    for (const name of Object.keys(app)) {
      const w = median(appWall[name]!);
      console.log(`  ${name.padEnd(38)} wall median ${w.toFixed(0).padStart(5)} ms (${(w / folder).toFixed(2)}× folder) [${appWall[name]!.map((t) => t.toFixed(0)).join(', ')}]`);
    }
  } finally {
    await service.dispose();
  }
} finally {
  await orthanc.stop();
  rmSync(tmp, { recursive: true, force: true });
}
