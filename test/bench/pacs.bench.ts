/**
 * Opening the 155-instance FLAIR phantom series (18 MB) from a PACS (Orthanc + DICOMweb on
 * loopback, started here) against opening the same files from disk, in the same run, alternating,
 * at two levels:
 *
 * Library (one thread, no service):
 * - disk: openPath(<the phantom folder>);
 * - PACS cold: openPacsStudy with an empty cache (QIDO-RS series, the series in one streamed
 *   WADO-RS reply, each instance checked and parsed as it arrives, the study assembled from
 *   memory); its cache writes go on behind it and are waited for outside the timing (reported);
 * - PACS cold, fetched into the cache then opened as a folder: how it was done before;
 * - PACS cold, one request per instance (6 in flight): for comparison;
 * - PACS warm: everything cached (QIDO-RS series, the cache check, the files read);
 * - Orthanc alone: curl reading the series reply into /dev/null: the server's own floor.
 * App (WorkstationService, as the page calls it; the io worker reads or fetches the study):
 * - open the folder (openStudy) against pacsOpen with the cache emptied (cold) or full (warm).
 *
 * The acceptance bound is PACS cold ≤ 2 × disk. Wall medians of N runs (default 9) after one
 * warm-up of each, CPU time of this process beside the library ones; the load average before
 * and after, since this machine is shared (wall time includes waiting for a core).
 * Run: npx tsx test/bench/pacs.bench.ts [runs]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { openPath } from '../../main/core/io/open.ts';
import { WorkstationService } from '../../main/core/api-service.ts';
import { InstanceCache } from '../../main/core/pacs/cache.ts';
import { DicomWebClient } from '../../main/core/pacs/dicomweb.ts';
import { openPacsStudy } from '../../main/core/pacs/open-study.ts';
import { retrieveStudy } from '../../main/core/pacs/retrieve.ts';
import { haveOrthanc, orthancMissing, readFiles, startOrthanc } from '../fixtures/orthanc.ts';

if (!haveOrthanc) {
  console.log(orthancMissing);
  process.exit(0);
}
const dir = resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001_flair_dicom');
const runs = Number(process.argv[2] ?? 9);
// the caches go where the user's would (a data or cache folder), not into /tmp: on this machine
// creating a file in /tmp takes up to 1.5 ms against 0.01–0.3 ms elsewhere on the same disk
const benchDir = process.env.SAM2UNET_BENCH_DIR ?? join(process.cwd(), 'test-output');
mkdirSync(benchDir, { recursive: true });
const tmp = mkdtempSync(join(benchDir, 'pacs-bench-'));
const haveCurl = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const list = (xs: number[]) => `[${xs.map((t) => t.toFixed(0)).join(', ')}]`;
const loadBefore = loadavg()[0]!;
const orthanc = await startOrthanc();
try {
  await orthanc.upload(readFiles(readdirSync(dir).filter((f) => f.endsWith('.dcm')).map((f) => join(dir, f))));
  const client = new DicomWebClient(orthanc.dicomWeb, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } });
  const studyUid = (await client.searchStudies({ patientId: 'PHANTOM001' })).studies[0]!.studyUid;
  const seriesUid = (await client.searchSeries(studyUid))[0]!.seriesUid;
  const authorization = `Basic ${Buffer.from(`${orthanc.user}:${orthanc.password}`).toString('base64')}`;
  let fresh = 0;
  let warmedUp = false;
  const warmRoot = join(tmp, 'warm');
  const writeBehind: number[] = [];
  const firstVolume = (studies: { sequences: Record<string, unknown> }[]) => Object.values(studies[0]!.sequences)[0];

  /** each opens the series; an open from the PACS returns its cache writes, started and waited for untimed */
  const measures: Record<string, () => Promise<{ written?: () => Promise<unknown>; ms?: number }>> = {
    disk: async () => (firstVolume((await openPath(dir)).studies), {}),
    'PACS cold (stream, parsed in memory)': async () => {
      const opened = await openPacsStudy(client, new InstanceCache(join(tmp, `cold-${fresh++}`), 2 ** 30), { studyUid });
      firstVolume(opened.studies);
      return { written: opened.writeCache };
    },
    'PACS cold, into the cache then openPath': async () => {
      const { folder } = await retrieveStudy(client, new InstanceCache(join(tmp, `cold-${fresh++}`), 2 ** 30), { studyUid, imagesOnly: true });
      return (firstVolume((await openPath(folder)).studies), {});
    },
    'PACS cold, one request per instance': async () => {
      const opened = await openPacsStudy(client, new InstanceCache(join(tmp, `cold-${fresh++}`), 2 ** 30), { studyUid, mode: 'instances' });
      return { written: opened.writeCache };
    },
    'PACS warm (all cached)': async () => {
      const opened = await openPacsStudy(client, new InstanceCache(warmRoot, 2 ** 30), { studyUid });
      if (opened.fetched.cachedInstances !== 155 && warmedUp) throw new Error(`warm run found ${opened.fetched.cachedInstances} cached`);
      return { written: opened.writeCache };
    },
    ...(haveCurl
      ? {
          'Orthanc alone (curl, reply dropped)': async () => {
            const url = `${orthanc.dicomWeb}/studies/${studyUid}/series/${seriesUid}`;
            const seconds = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{time_total}', '-H', `Authorization: ${authorization}`, '-H', 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*', url]).toString();
            return { ms: Number(seconds) * 1000 };
          },
        }
      : {}),
  };
  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  // warm-up: module compilation, Orthanc's and the OS's file caches, the warm cache filled
  for (const measure of Object.values(measures)) await (await measure()).written?.();
  warmedUp = true;
  for (let i = 0; i < runs; i++) {
    for (const [name, measure] of Object.entries(measures)) {
      const cpuStarted = process.cpuUsage();
      const started = performance.now();
      const { written, ms } = await measure();
      (wall[name] ??= []).push(ms ?? performance.now() - started);
      const used = process.cpuUsage(cpuStarted);
      (cpu[name] ??= []).push((used.user + used.system) / 1000);
      const writing = performance.now();
      await written?.();
      if (name.startsWith('PACS cold (stream')) writeBehind.push(performance.now() - writing);
    }
  }
  const diskMedian = median(wall.disk!);
  console.log(`open the 155-instance FLAIR series (18 MB), ${runs} runs each, alternating; load average ${loadBefore.toFixed(1)} before`);
  console.log('library (one thread):');
  for (const name of Object.keys(measures)) {
    const w = median(wall[name]!);
    const cpuText = name.startsWith('Orthanc') ? 'curl' : `CPU ${median(cpu[name]!).toFixed(0)} ms`;
    console.log(`  ${name.padEnd(40)} wall median ${w.toFixed(0).padStart(5)} ms (${(w / diskMedian).toFixed(2)}× disk) ${list(wall[name]!)}; ${cpuText}`);
  }
  console.log(`  (the cold open's cache writes, after it: median ${median(writeBehind).toFixed(0)} ms ${list(writeBehind)})`);
  const libraryRatio = median(wall['PACS cold (stream, parsed in memory)']!) / diskMedian;

  // the app's path: the service, the study read (or fetched and assembled) by the io worker
  const cacheDir = join(tmp, 'service-cache');
  const service = new WorkstationService({ mode: 'web', pacsCacheDir: cacheDir, resolveExportPath: () => tmp, log: () => undefined });
  /** the cache writes the worker does after a cold open, done (so they neither overlap the next measure nor leave a half cache) */
  const cacheComplete = async () => {
    const seriesDir = join(cacheDir, studyUid, seriesUid);
    for (let i = 0; i < 500; i++) {
      const names = existsSync(seriesDir) ? readdirSync(seriesDir) : [];
      if (names.filter((n) => n.endsWith('.dcm')).length === 155 && !names.some((n) => n.endsWith('.tmp'))) return;
      await new Promise((done) => setTimeout(done, 10));
    }
    throw new Error('the cache writes did not finish within 5 s');
  };
  try {
    const { id: connectionId } = await service.savePacsConnection({ name: 'bench', url: orthanc.dicomWeb, auth: 'basic', user: orthanc.user, secret: orthanc.password });
    let job = 0;
    /** `prepare` runs before the timing: emptying the cache is not part of opening */
    const app: Record<string, { prepare?: () => void; open: () => Promise<{ studies: { id: string }[] }> }> = {
      'app: open the folder': { open: () => service.openStudy({ path: dir }) },
      'app: open from the PACS, cold': {
        prepare: () => rmSync(cacheDir, { recursive: true, force: true }),
        open: () => service.pacsOpen({ connectionId, studyUid, jobId: `bench-${job++}` }),
      },
      'app: open from the PACS, warm': { open: () => service.pacsOpen({ connectionId, studyUid, jobId: `bench-${job++}` }) },
    };
    const appWall: Record<string, number[]> = {};
    const close = async (opened: { studies: { id: string }[] }) => {
      for (const study of opened.studies) await service.closeStudy({ studyId: study.id });
    };
    for (const [name, { prepare, open }] of Object.entries(app)) {
      prepare?.();
      await close(await open());
      if (name.includes('cold')) await cacheComplete();
    }
    for (let i = 0; i < runs; i++) {
      for (const [name, { prepare, open }] of Object.entries(app)) {
        prepare?.();
        const started = performance.now();
        const opened = await open();
        (appWall[name] ??= []).push(performance.now() - started);
        await close(opened);
        if (name.includes('cold')) await cacheComplete();
      }
    }
    console.log('app (service + io worker):');
    const folder = median(appWall['app: open the folder']!);
    for (const name of Object.keys(app)) {
      const w = median(appWall[name]!);
      console.log(`  ${name.padEnd(40)} wall median ${w.toFixed(0).padStart(5)} ms (${(w / folder).toFixed(2)}× folder) ${list(appWall[name]!)}`);
    }
    const appRatio = median(appWall['app: open from the PACS, cold']!) / folder;
    console.log(`load average ${loadavg()[0]!.toFixed(1)} after`);
    const verdict = (ratio: number) => `${ratio.toFixed(2)}× (${ratio <= 2 ? 'holds' : 'DOES NOT HOLD'} in this run)`;
    console.log(`acceptance (PACS cold ≤ 2× disk): app ${verdict(appRatio)}; library ${verdict(libraryRatio)}`);
  } finally {
    await service.dispose();
  }
} finally {
  await orthanc.stop();
  rmSync(tmp, { recursive: true, force: true });
}
