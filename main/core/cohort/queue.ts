/**
 * A cohort over many machines through BullMQ on Redis: `submit` enqueues one job per study
 * (its id derived from the study, the output folder and the run's settings, so submitting again
 * adds nothing twice), workers on any machine that sees the same shared folder run the jobs with
 * a model they keep loaded (thread-client.ts), and `collect` writes the same summary as the
 * single-machine run from the case folders, completed by what the queue knows.
 *
 * What BullMQ does for us: retries with exponential backoff for errors that may pass (a full
 * disk, a lost mount), moving a failing study to `failed` at once when the failure is in its data
 * (UnrecoverableError), and stalled-job recovery: a worker renews its job's lock every
 * lockDuration/2; when it dies, the lock expires and another worker's stalled check puts the job
 * back in the queue. A redone study never leaves a mix: every case folder is written under a
 * temporary name and renamed into place (util/fs.ts replaceDirectory).
 */
import { createHash } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { UserError, errorMessage } from '../errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { CaseFailedError, CaseRunner, type CohortRunSettings } from './case-run.ts';
import type { Cohort, CohortCase } from './find.ts';
import { removeStalePartials, workerName, type RunFingerprint } from './record.ts';
import { buildSummary, rowFromCase, rowFromDisk, type CaseRow, type CohortSummary } from './summary.ts';
import { writeCohortSummary, type CohortFiles } from './report.ts';
import { CohortThread } from './thread-client.ts';

export const DEFAULT_QUEUE = 'sam2unet-segment';
const MANIFEST = join('.cohort', 'queue.json');

export interface QueueTarget {
  /** redis://[user:password@]host:port[/db] or rediss://… */
  redis: string;
  queue?: string;
}

/** What one job carries: everything a worker needs, nothing it must look up. */
export interface StudyJob {
  case: string;
  study: string;
  kind: CohortCase['kind'];
  out: string;
  cohort: string;
  settings: CohortRunSettings;
  fingerprint: RunFingerprint;
  submitted_at: string;
}

export interface StudyJobResult {
  case: string;
  status: 'done' | 'skipped';
  seconds: number;
  worker: string;
}

/** The submission recorded in the shared folder, for `collect`. */
interface Manifest {
  cohort: string;
  out: string;
  queue: string;
  model: string;
  checkpoint: string;
  fingerprint: RunFingerprint;
  submitted_at: string;
  cases: (CohortCase & { job: string })[];
}

function connection(target: QueueTarget): { url: string; maxRetriesPerRequest: null } {
  let url: URL;
  try {
    url = new URL(target.redis);
  } catch {
    throw new UserError(`--redis expects a URL such as redis://127.0.0.1:6379, got "${target.redis}"`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UserError(`--redis expects a redis:// or rediss:// URL, got "${target.redis}"`);
  // BullMQ's workers block on Redis; ioredis must wait for it rather than fail the command
  return { url: target.redis, maxRetriesPerRequest: null };
}

/** The Redis URL without its password, for logs and files. */
export function redisLabel(redis: string): string {
  try {
    const url = new URL(redis);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return redis;
  }
}

function queueName(target: QueueTarget): string {
  const name = target.queue ?? DEFAULT_QUEUE;
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new UserError(`--queue "${name}": use letters, digits, ".", "_" and "-" only`);
  return name;
}

/** The job of a study: the same study, output folder and settings always give the same id. */
export function jobIdFor(out: string, studyRealPath: string, fingerprint: RunFingerprint, caseName: string): string {
  const key = createHash('sha256').update(`${resolve(out)}\0${studyRealPath}\0${JSON.stringify(fingerprint)}`).digest('hex').slice(0, 16);
  return `${caseName}-${key}`;
}

async function withQueue<T>(target: QueueTarget, fn: (queue: Queue) => Promise<T>): Promise<T> {
  const queue = new Queue(queueName(target), { connection: connection(target) });
  // a server that is not there must become an error, not an endless wait
  const unreachable = new Promise<never>((_, reject) => {
    queue.on('error', (err: Error) => reject(new UserError(`cannot reach Redis at ${redisLabel(target.redis)}: ${err.message}`)));
  });
  unreachable.catch(() => undefined);
  try {
    return await Promise.race([queue.waitUntilReady().then(() => fn(queue)), unreachable]);
  } finally {
    await queue.close().catch(() => undefined);
  }
}

export interface SubmitOptions {
  /** attempts per study (errors in the data fail at once); default 3 */
  attempts?: number;
  /** first retry delay in ms, doubling; default 10 s */
  backoffMs?: number;
  /**
   * queue again the studies whose job of the same id finished (completed or failed): after their
   * files changed, say (a worker still skips a study whose outputs are up to date)
   */
  again?: boolean;
}

export interface SubmitResult {
  queue: string;
  added: number;
  existing: number;
  jobs: { case: string; job: string; added: boolean }[];
}

export async function submitCohort(cohort: Cohort, out: string, settings: CohortRunSettings, target: QueueTarget, opts: SubmitOptions = {}): Promise<SubmitResult> {
  const outDir = resolve(out);
  if (outDir === cohort.folder || outDir.startsWith(`${cohort.folder}/`)) throw new UserError(`--out ${out} is inside the cohort ${cohort.folder}; write the outputs elsewhere`);
  // the model is chosen and hashed here (not loaded): the jobs carry its fingerprint
  const runner = await CaseRunner.create(settings);
  const submittedAt = new Date().toISOString();
  const cases = await Promise.all(cohort.cases.map(async (entry) => ({ ...entry, job: jobIdFor(outDir, await realpath(entry.path).catch(() => entry.path), runner.fingerprint, entry.name) })));
  const name = queueName(target);
  const result = await withQueue(target, async (queue) => {
    const jobs: SubmitResult['jobs'] = [];
    for (let i = 0; i < cases.length; i += 200) {
      const batch = cases.slice(i, i + 200);
      const existing = await Promise.all(
        batch.map(async (c) => {
          const job = await queue.getJob(c.job);
          if (!job || !opts.again) return job;
          const state = await job.getState();
          if (state !== 'completed' && state !== 'failed') return job;
          await job.remove();
          return undefined;
        }),
      );
      const fresh = batch.filter((_, k) => !existing[k]);
      await queue.addBulk(
        fresh.map((c) => ({
          name: 'segment',
          data: { case: c.name, study: c.path, kind: c.kind, out: outDir, cohort: cohort.folder, settings, fingerprint: runner.fingerprint, submitted_at: submittedAt } satisfies StudyJob,
          opts: { jobId: c.job, attempts: opts.attempts ?? 3, backoff: { type: 'exponential', delay: opts.backoffMs ?? 10_000 }, removeOnComplete: false, removeOnFail: false },
        })),
      );
      batch.forEach((c, k) => jobs.push({ case: c.name, job: c.job, added: !existing[k] }));
    }
    return jobs;
  });
  const manifest: Manifest = { cohort: cohort.folder, out: outDir, queue: name, model: runner.choice.name, checkpoint: runner.choice.checkpoint, fingerprint: runner.fingerprint, submitted_at: submittedAt, cases };
  await writeFileAtomic(join(outDir, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  return { queue: name, added: result.filter((j) => j.added).length, existing: result.filter((j) => !j.added).length, jobs: result };
}

/** How many jobs of each list `status` shows: counts are exact, lists are samples (10,000 jobs are not printed). */
const LISTED = 50;

export interface QueueStatus {
  queue: string;
  counts: Record<'waiting' | 'active' | 'completed' | 'failed' | 'delayed', number>;
  workers: string[];
  /** every running job (at most workers × concurrency) */
  active: { case: string; job: string; worker: string | null; progress: unknown; attempt: number }[];
  /** the first failed jobs, newest first */
  failed: { case: string; job: string; reason: string; attempts: number }[];
  /** the next jobs to run (waiting, then waiting to retry) */
  waiting: { case: string; job: string; attempt: number }[];
}

export async function queueStatus(target: QueueTarget): Promise<QueueStatus> {
  return withQueue(target, async (queue) => {
    const raw = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
    const counts = { waiting: (raw.waiting ?? 0) + (raw.prioritized ?? 0), active: raw.active ?? 0, completed: raw.completed ?? 0, failed: raw.failed ?? 0, delayed: raw.delayed ?? 0 };
    // a worker's connection is named bull:<queue>:w:<worker name>
    const workers = (await queue.getWorkers()).map((w) => w.rawname?.split(':w:')[1] ?? w.addr ?? '?');
    const data = (job: { data: unknown }) => job.data as StudyJob;
    const active = (await queue.getActive()).map((j) => ({ case: data(j).case, job: String(j.id), worker: (j as Job).processedBy ?? null, progress: j.progress, attempt: j.attemptsMade + 1 }));
    const failed = (await queue.getFailed(0, LISTED - 1)).map((j) => ({ case: data(j).case, job: String(j.id), reason: j.failedReason, attempts: j.attemptsMade }));
    const waiting = (await queue.getJobs(['waiting', 'prioritized', 'delayed'], 0, LISTED - 1, true)).map((j) => ({ case: data(j).case, job: String(j.id), attempt: j.attemptsMade + 1 }));
    return { queue: queueName(target), counts, workers, active, failed, waiting };
  });
}

async function readManifest(out: string): Promise<Manifest> {
  const file = join(resolve(out), MANIFEST);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Manifest;
  } catch {
    throw new UserError(`${out} holds no queue submission (${file} is missing or unreadable); run \`sam2unet queue submit <cohort> --out ${out} --redis …\` first`);
  }
}

/**
 * The summary of a submitted cohort from its shared folder; with `target`, the queue says which
 * cases are still waiting or running, and why a job failed when no worker could record it (a
 * job that stalled too often).
 */
export async function collectCohort(out: string, target?: QueueTarget): Promise<{ summary: CohortSummary; files: CohortFiles }> {
  const manifest = await readManifest(out);
  const outDir = manifest.out;
  const rows: CaseRow[] = [];
  for (const entry of manifest.cases) rows.push(await rowFromDisk(entry, outDir, { fingerprint: manifest.fingerprint }));
  if (target) {
    await withQueue({ ...target, queue: target.queue ?? manifest.queue }, async (queue) => {
      // a few hundred round trips at a time: a 10,000-study cohort is collected in seconds
      const states: { job: Awaited<ReturnType<Queue['getJob']>>; state: string }[] = [];
      for (let i = 0; i < manifest.cases.length; i += 200) {
        states.push(
          ...(await Promise.all(
            manifest.cases.slice(i, i + 200).map(async (entry) => {
              const job = await queue.getJob(entry.job);
              return { job, state: job ? await job.getState() : 'unknown' };
            }),
          )),
        );
      }
      for (const [i, entry] of manifest.cases.entries()) {
        const { job, state } = states[i]!;
        const row = rows[i]!;
        if (row.status === 'pending' && state === 'failed') rows[i] = rowFromCase(entry, 'failed', { error: job!.failedReason || 'failed in the queue' });
        else if (row.status === 'pending' && state !== 'unknown') row.notes = [...row.notes, `job ${state}`];
        // a case done, its job not running: what killed workers left half-written can go
        if (row.status === 'done' && state !== 'active') await removeStalePartials(outDir, entry.name, { anyHost: true });
      }
    });
  }
  const summary = buildSummary({ cohort: manifest.cohort, out: outDir, rows, run: { ...manifest.fingerprint, model: manifest.model, checkpoint: manifest.checkpoint } });
  return { summary, files: await writeCohortSummary(outDir, summary) };
}

export interface WorkerOptions {
  concurrency?: number;
  /** execution provider for this machine (overrides the submitted one) */
  device?: CohortRunSettings['model']['device'];
  /** BullMQ lock duration (ms): a dead worker's job is taken back after at most this long (default 30 s) */
  lockDuration?: number;
  /** how often (ms) this worker looks for stalled jobs (default 30 s) */
  stalledInterval?: number;
  /** the name in `queue status` and in each case's record (default host:pid) */
  name?: string;
  log?: (line: string) => void;
}

export interface RunningWorker {
  name: string;
  /** stops taking jobs; waits for the running ones unless `force` */
  close(force?: boolean): Promise<void>;
  /** resolves when the worker is closed */
  closed: Promise<void>;
}

/** A cohort thread per concurrent job, kept (with its model) for the next job of the same settings. */
class ThreadPool {
  readonly #slots: { key: string; thread: Promise<CohortThread>; busy: boolean }[] = [];
  readonly #size: number;
  readonly #log: (line: string) => void;
  readonly #name: string;

  constructor(size: number, name: string, log: (line: string) => void) {
    this.#size = size;
    this.#name = name;
    this.#log = log;
  }

  async acquire(settings: CohortRunSettings): Promise<{ thread: CohortThread; release: () => void }> {
    const key = JSON.stringify(settings);
    let slot = this.#slots.find((s) => !s.busy && s.key === key);
    if (!slot) {
      const idle = this.#slots.findIndex((s) => !s.busy);
      if (this.#slots.length >= this.#size && idle >= 0) {
        // another model or other settings: this slot's model makes room
        const [old] = this.#slots.splice(idle, 1);
        void old!.thread.then((t) => t.dispose()).catch(() => undefined);
      }
      slot = {
        key,
        busy: false,
        thread: CohortThread.start(settings, {
          workerName: this.#name,
          onNote: (text) => this.#log(`note: ${text}`),
          onModelReady: (m) => this.#log(`model ready in ${(m.loadMs / 1000).toFixed(1)} s${m.cached ? ' (cached graph)' : ''} on ${m.provider.toUpperCase()}`),
        }),
      };
      this.#slots.push(slot);
      slot.thread.catch(() => this.#slots.splice(this.#slots.indexOf(slot!), 1));
    }
    slot.busy = true;
    const taken = slot;
    try {
      return { thread: await taken.thread, release: () => (taken.busy = false) };
    } catch (err) {
      taken.busy = false;
      throw err;
    }
  }

  async dispose(): Promise<void> {
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => s.thread.then((t) => t.dispose()).catch(() => undefined)));
  }
}

export function startWorker(target: QueueTarget, opts: WorkerOptions = {}): RunningWorker {
  const name = opts.name ?? workerName();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const say = (line: string) => log(`[${name}] ${line}`);
  const concurrency = opts.concurrency ?? 1;
  const pool = new ThreadPool(concurrency, name, say);

  const processor = async (job: Job<StudyJob, StudyJobResult>, _token?: string, signal?: AbortSignal): Promise<StudyJobResult> => {
    const data = job.data;
    const settings: CohortRunSettings = { ...data.settings, model: { ...data.settings.model, ...(opts.device ? { device: opts.device } : {}) } };
    say(`started ${data.case} (job ${job.id}, attempt ${job.attemptsMade + 1})`);
    const { thread, release } = await pool.acquire(settings);
    try {
      if (JSON.stringify(thread.fingerprint) !== JSON.stringify(data.fingerprint)) {
        say(`note: ${data.case}: the model or its settings differ from what was submitted (the checkpoint changed since?); recorded as run here`);
      }
      const entry: CohortCase = { name: data.case, path: data.study, kind: data.kind };
      // a study that cannot even be hashed fails in run() below, recorded like any other failure
      const check = await thread.upToDate(entry, data.out).catch(() => null);
      if (check?.record) {
        say(`${data.case} is up to date: skipped`);
        return { case: data.case, status: 'skipped', seconds: check.record.seconds, worker: check.record.worker };
      }
      let reported = -1;
      const done = await thread.run(entry, data.out, {
        ...(signal ? { signal } : {}),
        ...(check ? { inputHash: check.inputHash } : {}),
        onSlice: (n, total) => {
          // a few progress updates per study, not one Redis round trip per slice
          const tenth = Math.floor((10 * n) / Math.max(1, total));
          if (tenth === reported) return;
          reported = tenth;
          say(`${data.case} ${tenth * 10}% (${n}/${total} slices)`);
          void job.updateProgress({ done: n, total }).catch(() => undefined);
        },
      });
      say(`done ${data.case} in ${done.seconds.toFixed(1)} s`);
      return { case: data.case, status: 'done', seconds: done.seconds, worker: done.worker };
    } catch (err) {
      if (err instanceof CaseFailedError && err.failure.data_error) {
        say(`FAILED ${data.case}: ${err.message} (a problem in the study: not retried)`);
        throw new UnrecoverableError(err.message);
      }
      say(`error in ${data.case}: ${errorMessage(err)} (attempt ${job.attemptsMade + 1} of ${job.opts.attempts ?? 1})`);
      throw err;
    } finally {
      release();
    }
  };

  const worker = new Worker<StudyJob, StudyJobResult>(queueName(target), processor, {
    connection: connection(target),
    concurrency,
    name,
    lockDuration: opts.lockDuration ?? 30_000,
    stalledInterval: opts.stalledInterval ?? 30_000,
    // a study whose worker died twice is tried on a third; more points at the study, not the workers
    maxStalledCount: 2,
  });
  let lastError = '';
  worker.on('error', (err) => {
    // ioredis reconnects by itself; say it once per kind of trouble, not every retry
    if (err.message !== lastError) say(`queue error: ${err.message}`);
    lastError = err.message;
  });
  worker.on('stalled', (jobId) => say(`job ${jobId} stalled (its worker stopped renewing its lock): back in the queue`));
  worker.on('ready', () => say(`waiting for jobs on ${queueName(target)} at ${redisLabel(target.redis)} (concurrency ${concurrency})`));
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  return {
    name,
    closed,
    close(force = false) {
      closing ??= (async () => {
        await worker.close(force);
        await pool.dispose();
        resolveClosed();
      })();
      return closing;
    },
  };
}
