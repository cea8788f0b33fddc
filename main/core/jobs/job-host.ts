/**
 * Long jobs (segmentation, training) run in worker threads so that the process serving the UI —
 * Electron's main process, the web server — never blocks: not on ONNX Runtime's synchronous
 * run, nor on pre- and post-processing, graph building or whole-volume metrics.
 *
 * A JobHost owns one worker per lane: reading studies and checkpoints, inference (it keeps
 * models loaded between runs) and training (started per run and ended with it: it holds
 * gigabytes of graph and optimiser state). Each worker is one channel (rpc/channel.ts): a job is
 * a call, its events the call's progress, cancelling it the call's cancellation.
 */
import type { Worker } from 'node:worker_threads';
import { CancelledError } from '../errors.ts';
import { ChannelClient } from '../rpc/channel.ts';
import { nodePortTransport } from '../rpc/ports.ts';
import { currentReadScope } from '../util/fs.ts';
import { startTsWorker } from '../util/worker.ts';
import type { JobControl, JobKind, JobKinds, JobRequest } from './kinds.ts';

const ENTRY = new URL('./job-worker.ts', import.meta.url);

export interface RunOptions<K extends JobKind> {
  onEvent?: (event: JobKinds[K]['event']) => void;
  /** receives, once the job is sent, a function that sends the job a control message (in order, after the job; dropped once the job ended) */
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
const LANE: Record<JobKind, Lane> = { open: 'io', pacsOpen: 'io', pacsSettle: 'io', roles: 'io', describe: 'io', segment: 'inference', prepare: 'inference', inspect: 'io', train: 'train', mask: 'io', review: 'io' };
const PERSISTENT: Record<Lane, boolean> = { io: true, inference: true, train: false };

interface LaneWorker {
  worker: Worker;
  channel: ChannelClient;
}

export class JobHost {
  readonly #lanes = new Map<Lane, LaneWorker>();
  #nextKey = 1;
  #disposed = false;

  #lane(lane: Lane): LaneWorker {
    const existing = this.#lanes.get(lane);
    if (existing) return existing;
    const worker = startTsWorker(ENTRY);
    const channel = new ChannelClient(nodePortTransport(worker, `the ${lane} worker`));
    const entry = { worker, channel };
    // a worker that died takes only its own calls with it; the next job starts a new one
    worker.once('exit', () => this.#lanes.get(lane) === entry && this.#lanes.delete(lane));
    this.#lanes.set(lane, entry);
    return entry;
  }

  async run<K extends JobKind>(kind: K, payload: JobKinds[K]['payload'], opts: RunOptions<K> = {}): Promise<JobKinds[K]['result']> {
    if (this.#disposed) throw new Error('the job host was shut down');
    if (opts.signal?.aborted) throw new CancelledError();
    const lane = LANE[kind];
    const entry = this.#lane(lane);
    const key = this.#nextKey++;
    const request: JobRequest<K> = { payload, readScope: currentReadScope(), key };
    let running = true;
    try {
      const result = entry.channel.call<JobKinds[K]['result']>(kind, request, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onEvent ? { onProgress: opts.onEvent as (event: unknown) => void } : {}),
        ...(opts.transfer ? { transfer: opts.transfer } : {}),
      });
      // on the same channel, after the job: the worker delivers them in order
      opts.onControl?.((message) => running && void entry.channel.call('control', { key, message }).catch(() => undefined));
      return await result;
    } finally {
      running = false;
      if (!PERSISTENT[lane] && this.#lanes.get(lane) === entry && entry.channel.pendingCalls === 0) {
        this.#lanes.delete(lane);
        // let it release its sessions; it exits itself
        void entry.channel.call('dispose', null).catch(() => undefined);
      }
    }
  }

  /** Cancels every job and ends the workers (models are released with them). */
  async dispose(): Promise<void> {
    this.#disposed = true;
    const lanes = [...this.#lanes.values()];
    this.#lanes.clear();
    await Promise.all(
      lanes.map(async ({ worker, channel }) => {
        const exited = new Promise<void>((done) => worker.once('exit', () => done()));
        void channel.call('dispose', null).catch(() => undefined);
        channel.close(new CancelledError());
        // a worker stuck in a native call gets a moment to release its sessions, then is ended
        const timeout = new Promise<'timeout'>((done) => setTimeout(() => done('timeout'), 5000).unref());
        if ((await Promise.race([exited, timeout])) === 'timeout') await worker.terminate();
      }),
    );
  }
}
