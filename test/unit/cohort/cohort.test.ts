/**
 * Cohorts end to end with the bundled model: the four shared phantoms plus a broken study
 * (a truncated .nii.gz), on one machine (`segment <folder>`), then rerun (everything up to date),
 * then over two worker processes through BullMQ on a Redis server this test starts, one worker
 * killed in the middle of a study; the distributed label maps must equal the single-machine ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { findCohort } from '../../../main/core/cohort/find.ts';
import { CaseRunner } from '../../../main/core/cohort/case-run.ts';
import { POSTPROCESS_DEFAULTS } from '../../../main/core/model/postprocess.ts';
import type { CohortSummary } from '../../../main/core/cohort/summary.ts';
import { pdfPageTexts } from '../report/pdftext.ts';
import { queueStatus } from '../../../main/core/cohort/queue.ts';
import { readCompleteRecord } from '../../../main/core/cohort/record.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const CASES = ['BraTS20_Training_001', 'BraTS20_Training_002', 'BraTS20_Training_003', 'BraTS20_Training_004'];
const BROKEN = 'BraTS20_Training_005';
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-cohort-'));
const cohortDir = join(tmp, 'cohort');
const out = join(tmp, 'out');
/** ~7 s per phantom on an idle machine; a shared CI machine may be several times slower */
const SLOW = 600_000;

/** A BraTS case folder like 001 whose FLAIR is cut off after 1 MB (a copy interrupted mid-file). */
function makeBrokenCase(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const role of ['t1', 't1ce', 't2', 'seg']) copyFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_${role}.nii.gz`), join(dir, `${BROKEN}_${role}.nii.gz`));
  writeFileSync(join(dir, `${BROKEN}_flair.nii.gz`), readFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_flair.nii.gz`)).subarray(0, 1_000_000));
}

async function run(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const started = performance.now();
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), interactive: false });
  return { code, stdout, stderr, ms: performance.now() - started };
}

/** A CSV line split into fields (quoted fields may hold commas and doubled quotes). */
function csvRow(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

function readCsv(file: string): Record<string, string>[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const columns = csvRow(header!);
  return lines.map((l) => Object.fromEntries(csvRow(l).map((v, i) => [columns[i]!, v])));
}

beforeAll(() => {
  mkdirSync(cohortDir);
  // a cohort assembled from links to where the studies lie, as a research group does
  for (const c of CASES) symlinkSync(join(phantoms, c), join(cohortDir, c));
  makeBrokenCase(join(cohortDir, BROKEN));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let first: Awaited<ReturnType<typeof run>>;

describe('a cohort on one machine', () => {
  it('is recognised from its sub-folders; a study folder and the series folders of one study are not cohorts', async () => {
    const cohort = await findCohort(cohortDir);
    expect(cohort?.cases.map((c) => c.name)).toEqual([...CASES, BROKEN]);
    expect(cohort?.cases.every((c) => c.kind === 'brats')).toBe(true);
    expect(cohort?.cases[0]).toMatchObject({ sequences: ['flair', 't1', 't1ce', 't2'], groundTruth: true });
    expect(await findCohort(join(phantoms, CASES[0]!))).toBeNull();
    await expect(findCohort(join(phantoms, CASES[0]!), { explicit: true })).rejects.toThrow(/is not a cohort: it holds a BraTS case itself/);
    const series = join(tmp, 'one-study');
    for (const s of ['flair', 'flair-copy']) {
      mkdirSync(join(series, s), { recursive: true });
      const src = join(phantoms, 'BraTS20_Training_001_flair_dicom');
      for (const f of ['IM00526276.dcm', 'IM00660277.dcm']) copyFileSync(join(src, f), join(series, s, f));
    }
    expect(await findCohort(series)).toBeNull();
    await expect(findCohort(series, { explicit: true })).rejects.toThrow(/series of one DICOM study/);
  });

  it('segments the four phantoms, records the broken study as failed with its error, and summarises them', async () => {
    first = await run('segment', cohortDir, '--out', out);
    console.log(`cohort of ${CASES.length + 1}: first run ${(first.ms / 1000).toFixed(1)} s`);
    expect(first.code, first.stderr).toBe(3); // some studies failed
    expect(first.stderr).toMatch(/cohort: 5 studies in .*, 0 up to date, 5 to segment/);
    expect(first.stderr).toMatch(/cohort +\d+% \d\/5 studies ETA/);
    expect(first.stdout).toMatch(new RegExp(`FAILED +${BROKEN}: .*${BROKEN}_flair\\.nii\\.gz: truncated gzip`));
    const summary = JSON.parse(readFileSync(join(out, 'cohort.json'), 'utf8')) as CohortSummary;
    expect(summary.counts).toEqual({ done: 4, skipped: 0, failed: 1, pending: 0 });
    expect(summary.cases.map((c) => [c.case, c.status])).toEqual([...CASES.map((c) => [c, 'done']), [BROKEN, 'failed']]);
    expect(summary.cases[4]!.error).toMatch(/BraTS20_Training_005_flair\.nii\.gz: truncated gzip data/);
    expect(summary.run?.model_hash).toMatch(/^[0-9a-f]{64}$/);
    for (const c of summary.cases.slice(0, 4)) {
      expect(c.input_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(c).toMatchObject({ ground_truth: true, sequences_used: ['flair', 't1ce', 't2'], model: 'bundled default model', outputs: c.case });
      expect(c.seconds).toBeGreaterThan(0);
      // each study's outputs as a single-study segment writes them, plus its record
      for (const f of [`${c.case}_pred.nii.gz`, 'metrics.json', 'metrics.csv', 'report.html', 'report.pdf', 'cohort-case.json']) expect(existsSync(join(out, c.case, f)), f).toBe(true);
    }
    expect(existsSync(join(out, BROKEN))).toBe(false);

    // cohort.csv carries exactly the figures of each case's metrics.json
    const rows = readCsv(join(out, 'cohort.csv'));
    expect(rows.map((r) => r.status)).toEqual(['done', 'done', 'done', 'done', 'failed']);
    for (const row of rows.slice(0, 4)) {
      const metrics = JSON.parse(readFileSync(join(out, row.case!, 'metrics.json'), 'utf8'));
      for (const region of ['WT', 'TC', 'ET']) {
        expect(Number(row[`dice_${region}`]), `${row.case} ${region} Dice`).toBe(metrics.perVolume[region].dice);
        expect(Number(row[`hd95_${region}`]), `${row.case} ${region} HD95`).toBe(metrics.perVolume[region].hd95);
        expect(Number(row[`volume_ml_${region}`]), `${row.case} ${region} volume`).toBe(metrics.prediction.regionVolumesMl[region]);
        expect(Number(row[`lesion_dice_${region}`]), `${row.case} ${region} lesion-wise Dice`).toBe(metrics.tumour.lesionWise.regions[region].dice);
        expect(Number(row[`lesion_hd95_${region}`]), `${row.case} ${region} lesion-wise HD95`).toBe(metrics.tumour.lesionWise.regions[region].hd95);
      }
      expect(Number(row.lesions)).toBe(metrics.tumour.description.lesions.length);
    }
    expect(rows[4]!.error).toMatch(/truncated gzip/);

    // the distributions and the table, in the HTML and the PDF
    const html = readFileSync(join(out, 'cohort.html'), 'utf8');
    expect(html.match(/<g class="box" data-region="(WT|TC|ET)" data-n="4"/g)).toHaveLength(3);
    expect(html.match(/<svg [^>]*class="cohort-volume"/g)).toHaveLength(3);
    expect(html).toContain(`<tr class="status-failed" data-case="${BROKEN}"`);
    expect(html).toContain(`<a href="${CASES[0]}/report.html">`);
    const pdf = readFileSync(join(out, 'cohort.pdf'));
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const pdfText = pdfPageTexts(pdf).flat();
    expect(pdfText).toContain('5 studies · 4 segmented · 0 up to date (skipped) · 1 failed');
    // the failures, with their errors (a long path wraps onto the next line)
    expect(pdfText.join(' ')).toMatch(new RegExp(`${BROKEN}: \\S*${BROKEN}_flair\\.nii\\.gz: ?truncated gzip`));
  }, SLOW);

  it('skips every done study on a rerun, in under a tenth of the first run\'s time', async () => {
    const predictions = CASES.map((c) => statSync(join(out, c, `${c}_pred.nii.gz`)).mtimeMs);
    const again = await run('segment', cohortDir, '--out', out);
    console.log(`rerun: ${(again.ms / 1000).toFixed(2)} s (${((100 * again.ms) / first.ms).toFixed(1)} % of the first run)`);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/cohort: 5 studies in .*, 4 up to date, 1 to segment/);
    const summary = JSON.parse(readFileSync(join(out, 'cohort.json'), 'utf8')) as CohortSummary;
    expect(summary.counts).toEqual({ done: 0, skipped: 4, failed: 1, pending: 0 });
    // untouched outputs, and the skipped rows keep their figures
    expect(CASES.map((c) => statSync(join(out, c, `${c}_pred.nii.gz`)).mtimeMs)).toEqual(predictions);
    expect(summary.cases[0]!.metrics?.WT?.dice).toBeGreaterThan(0.5);
    expect(again.ms).toBeLessThan(first.ms / 10);
  }, SLOW);

  it('decides "up to date" from contents: a copy of a study is, a changed file or another setting is not', async () => {
    const runner = await CaseRunner.create({ model: {}, postprocess: POSTPROCESS_DEFAULTS });
    const copy = join(tmp, 'copy', CASES[0]!);
    mkdirSync(copy, { recursive: true });
    for (const role of ['t1', 't1ce', 't2', 'flair', 'seg']) copyFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_${role}.nii.gz`), join(copy, `${CASES[0]}_${role}.nii.gz`));
    const entry = { name: CASES[0]!, path: copy, kind: 'brats' as const };
    expect((await runner.upToDate(entry, out)).record?.case).toBe(CASES[0]);
    const t2 = join(copy, `${CASES[0]}_t2.nii.gz`);
    const bytes = readFileSync(t2);
    bytes[bytes.length - 20] ^= 0xff;
    writeFileSync(t2, bytes);
    expect((await runner.upToDate(entry, out)).record).toBeNull();
    const other = await CaseRunner.create({ model: {}, postprocess: { ...POSTPROCESS_DEFAULTS, minEtMl: 0 } });
    expect((await other.upToDate({ ...entry, path: join(phantoms, CASES[0]!) }, out)).record).toBeNull();
    expect((await runner.upToDate({ ...entry, path: join(phantoms, CASES[0]!) }, out)).record?.case).toBe(CASES[0]);
  });
});

/** A loopback port nobody listens on (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Waits for `test` to hold, checking every `ms`. */
async function until(what: string, test: () => boolean | Promise<boolean>, timeout: number, ms = 250): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, ms));
  }
}

interface WorkerProcess {
  name: string;
  child: ChildProcess;
  log: string[];
  exited: Promise<number | null>;
}

describe('a cohort over two workers (BullMQ on Redis)', () => {
  const redisDir = join(tmp, 'redis');
  const shared = join(tmp, 'shared-out');
  let redis: ChildProcess | undefined;
  let url = '';
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    mkdirSync(redisDir);
    const port = await freePort();
    // a throw-away server: loopback only, nothing written to disk
    const config = join(redisDir, 'redis.conf');
    writeFileSync(config, [`port ${port}`, 'bind 127.0.0.1', 'protected-mode yes', `dir ${redisDir}`, 'save ""', 'appendonly no', 'daemonize no', 'logfile ""', ''].join('\n'));
    const server = spawn('redis-server', [config], { stdio: ['ignore', 'pipe', 'pipe'] });
    redis = server;
    let output = '';
    server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const spawnError = new Promise<never>((_, reject) => server.once('error', (err) => reject(new Error(`cannot start redis-server (the Debian package redis-server; .ci/run installs it): ${err.message}`))));
    await Promise.race([until('redis-server to accept connections', () => output.includes('Ready to accept connections'), 30_000), spawnError]);
    url = `redis://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    if (redis && redis.exitCode === null) {
      const exited = new Promise((r) => redis!.once('exit', r));
      redis.kill('SIGTERM');
      await exited;
    }
  });

  function startWorker(name: string): WorkerProcess {
    const child = spawn(process.execPath, ['bin/sam2unet.mjs', 'worker', '--redis', url, '--name', name, '--lock-duration', '4000', '--stalled-interval', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    let partial = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      log.push(...lines);
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const worker = { name, child, log, exited };
    workers.push(worker);
    return worker;
  }

  it('ends every study done (the broken one failed) exactly once, the killed worker\'s study redone whole, the label maps those of one machine', async () => {
    const started = performance.now();
    const submit = await run('queue', 'submit', cohortDir, '--out', shared, '--redis', url, '--backoff', '500');
    expect(submit.code, submit.stderr).toBe(0);
    expect(submit.stdout).toMatch(/^5 studies queued on sam2unet-segment/);
    // submitting again adds nothing
    const again = await run('queue', 'submit', cohortDir, '--out', shared, '--redis', url);
    expect(again.stdout).toMatch(/^0 studies queued .* \(5 queued before: not added again/);

    const [a, b] = [startWorker('A'), startWorker('B')];
    // kill a worker a third of the way into a (good) study
    let victim: WorkerProcess | undefined;
    let killedCase = '';
    await until(
      'a worker in the middle of a study',
      () => {
        for (const w of [a, b]) {
          const line = w.log.find((l) => /\] BraTS20_Training_00[1-4] [3-9]0% \(/.test(l));
          if (line) {
            victim = w;
            killedCase = /\] (BraTS20_Training_00\d) /.exec(line)![1]!;
            return true;
          }
        }
        return false;
      },
      SLOW,
      50,
    );
    victim!.child.kill('SIGKILL');
    await victim!.exited;
    const killedAt = performance.now();
    const survivor = victim === a ? b : a;
    console.log(`killed worker ${victim!.name} in the middle of ${killedCase} after ${((killedAt - started) / 1000).toFixed(1)} s`);

    await until(
      'the queue to finish',
      async () => {
        const { counts } = await queueStatus({ redis: url });
        return counts.waiting + counts.active + counts.delayed === 0 && counts.completed + counts.failed === 5;
      },
      SLOW,
      1000,
    );
    const finished = performance.now();
    console.log(`distributed run: ${((finished - started) / 1000).toFixed(1)} s in all, ${((finished - killedAt) / 1000).toFixed(1)} s after the kill`);
    const status = await queueStatus({ redis: url });
    expect(status.counts).toMatchObject({ completed: 4, failed: 1 });
    // a figure for docs/scaling.md: what the queue cost Redis (idle polling and lock renewals included)
    const { Redis } = await import('ioredis');
    const client = new Redis(url);
    const stats = (await client.info('commandstats')).split('\n').filter((l) => l.startsWith('cmdstat_'));
    await client.quit();
    const calls = (name: string) => Number(/calls=(\d+)/.exec(stats.find((l) => l.startsWith(`cmdstat_${name}:`)) ?? '')?.[1] ?? 0);
    const total = stats.reduce((sum, l) => sum + Number(/calls=(\d+)/.exec(l)?.[1] ?? 0), 0);
    const top = stats
      .map((l) => [/^cmdstat_([^:]+):/.exec(l)![1]!, calls(/^cmdstat_([^:]+):/.exec(l)![1]!)] as const)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 6);
    console.log(`Redis: ${total} commands in ${((finished - started) / 1000).toFixed(0)} s for 5 jobs and 2 workers, this test's status polling included (${top.map(([n, c]) => `${n} ${c}`).join(', ')})`);
    // a problem in the data is failed at once, not retried
    expect(status.failed).toEqual([expect.objectContaining({ case: BROKEN, attempts: 1, reason: expect.stringMatching(/truncated gzip/) })]);
    expect(survivor.log.some((l) => l.includes(`started ${killedCase}`))).toBe(true);
    expect(survivor.log.some((l) => l.includes(`done ${killedCase}`))).toBe(true);

    const collect = await run('queue', 'collect', '--out', shared, '--redis', url);
    expect(collect.code, collect.stderr).toBe(3);
    const summary = JSON.parse(readFileSync(join(shared, 'cohort.json'), 'utf8')) as CohortSummary;
    // every study exactly once
    expect(summary.cases.map((c) => c.case)).toEqual([...CASES, BROKEN]);
    expect(summary.cases.map((c) => c.status)).toEqual(['done', 'done', 'done', 'done', 'failed']);
    expect(summary.cases[4]!.error).toMatch(/BraTS20_Training_005_flair\.nii\.gz: truncated gzip data/);
    expect(readCsv(join(shared, 'cohort.csv')).map((r) => r.case)).toEqual([...CASES, BROKEN]);

    // the killed study's outputs are complete and the survivor's; nothing half-written is left
    const record = await readCompleteRecord(shared, killedCase);
    expect(record?.worker).toBe(survivor.name);
    expect(readdirSync(join(shared, '.cohort', 'partial'))).toEqual([]);
    expect(readdirSync(join(shared, killedCase)).sort()).toEqual(readdirSync(join(out, killedCase)).sort());

    // voxel for voxel the single-machine label maps
    for (const c of CASES) {
      const [distributed, single] = await Promise.all([readNifti(join(shared, c, `${c}_pred.nii.gz`)), readNifti(join(out, c, `${c}_pred.nii.gz`))]);
      const [d, s] = [distributed.volumes[0]!, single.volumes[0]!];
      expect(d.dims).toEqual(s.dims);
      expect(Buffer.compare(Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength), Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength)), `${c} label map`).toBe(0);
    }
  }, SLOW);
});
