/**
 * Long jobs (segmentation, training) run in worker threads so that the process serving the UI —
 * Electron's main process, the web server — never blocks: not on ONNX Runtime's synchronous
 * run, nor on pre- and post-processing, graph building or whole-volume metrics.
 *
 * A JobHost owns one worker per lane: reading studies and checkpoints, inference (it keeps
 * models loaded between runs) and training (started per run and ended with it: it holds
 * gigabytes of graph and optimiser state). Events stream back as they happen; the
 * job's result or error settles the returned promise; cancelling aborts the job in the worker.
 */
import type { Worker } from 'node:worker_threads';
import { CancelledError } from '../errors.ts';
import { postTransferring } from '../onnx/session.ts';
import { currentReadScope } from '../util/fs.ts';
import { rebuildError, startTsWorker, type SerializedError } from '../util/worker.ts';
import type { JobKinds, JobKind, HostMessage, WorkerMessage } from './worker-jobs.ts';

const ENTRY = new URL('./job-worker.ts', import.meta.url);

interface Pending {
  lane: Lane;
  worker: Worker;
  onEvent: (event: unknown) => void;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** What a running job of kind K can be told (the segmentation: the slice in focus). */
export type JobControl<K extends JobKind> = JobKinds[K] extends { control: infer C } ? C : never;

export interface RunOptions<K extends JobKind> {
  onEvent?: (event: JobKinds[K]['event']) => void;
  /** receives, once the job is posted, a function that sends the job a control message (delivered in order, dropped once the job ended) */
  onControl?: (send: (message: JobControl<K>) => void) => void;
  signal?: AbortSignal;
  /** buffers of the payload to move rather than copy (the caller must not use them afterwards) */
  transfer?: ArrayBuffer[];
}

/**
 * The worker each kind runs in. Inference work shares one long-lived worker (models stay
 * loaded); training gets its own, ended after the run.
 */
type Lane = 'io' | 'inference' | 'train';
const LANE: Record<JobKind, Lane> = { open: 'io', roles: 'io', describe: 'io', segment: 'inference', prepare: 'inference', inspect: 'io', train: 'train' };
const PERSISTENT: Record<Lane, boolean> = { io: true, inference: true, train: false };

export class JobHost {
  readonly #workers = new Map<Lane, Worker>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #disposed = false;

  #worker(lane: Lane): Worker {
    const existing = this.#workers.get(lane);
    if (existing) return existing;
    const worker = startTsWorker(ENTRY);
    worker.on('message', (m: WorkerMessage) => this.#onMessage(m));
    const fail = (err: Error): void => {
      if (this.#workers.get(lane) === worker) this.#workers.delete(lane);
      for (const [id, p] of this.#pending) {
        // a worker ended after its run must not take the next run (in a new worker) with it
        if (p.worker !== worker) continue;
        this.#pending.delete(id);
        p.reject(err);
      }
    };
    worker.on('error', (err) => fail(new Error(`the ${lane} worker failed: ${err instanceof Error ? err.message : String(err)}`)));
    worker.on('exit', (code) => fail(new Error(`the ${lane} worker stopped unexpectedly (exit code ${code})`)));
    this.#workers.set(lane, worker);
    return worker;
  }

  #onMessage(m: WorkerMessage): void {
    const pending = this.#pending.get(m.id);
    if (!pending) return;
    if (m.type === 'event') {
      pending.onEvent(m.event);
      return;
    }
    this.#pending.delete(m.id);
    if (m.type === 'result') pending.resolve(m.value);
    else pending.reject(rebuildError(m.error as SerializedError));
    if (!PERSISTENT[pending.lane] && ![...this.#pending.values()].some((p) => p.lane === pending.lane)) {
      const worker = this.#workers.get(pending.lane);
      this.#workers.delete(pending.lane);
      // let it release its sessions; it exits itself
      worker?.postMessage({ type: 'dispose' } satisfies HostMessage);
    }
  }

  run<K extends JobKind>(kind: K, payload: JobKinds[K]['payload'], opts: RunOptions<K> = {}): Promise<JobKinds[K]['result']> {
    if (this.#disposed) return Promise.reject(new Error('the job host was shut down'));
    if (opts.signal?.aborted) return Promise.reject(new CancelledError());
    const id = this.#nextId++;
    const lane = LANE[kind];
    const worker = this.#worker(lane);
    return new Promise<JobKinds[K]['result']>((resolve, reject) => {
      const onAbort = (): void => worker.postMessage({ type: 'cancel', id } satisfies HostMessage);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => opts.signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        lane,
        worker,
        onEvent: (event) => opts.onEvent?.(event as JobKinds[K]['event']),
        resolve: (value) => {
          cleanup();
          resolve(value as JobKinds[K]['result']);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      });
      // the caller's read roots hold for what the job opens in its worker
      postTransferring(worker, { type: 'start', id, kind, payload, readScope: currentReadScope() } as HostMessage, opts.transfer ?? []);
      opts.onControl?.((message) => {
        if (this.#pending.has(id)) worker.postMessage({ type: 'control', id, message } satisfies HostMessage);
      });
    });
  }

  /** Cancels every job and ends the workers (models are released with them). */
  async dispose(): Promise<void> {
    this.#disposed = true;
    const workers = [...this.#workers.values()];
    this.#workers.clear();
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new CancelledError());
    }
    await Promise.all(
      workers.map(async (worker) => {
        worker.postMessage({ type: 'dispose' } satisfies HostMessage);
        // a worker stuck in a native call gets a moment to release its sessions, then is ended
        const exited = new Promise<void>((done) => worker.once('exit', () => done()));
        const timeout = new Promise<'timeout'>((done) => setTimeout(() => done('timeout'), 5000).unref());
        if ((await Promise.race([exited, timeout])) === 'timeout') await worker.terminate();
      }),
    );
  }
}

export type { SerializedError };
