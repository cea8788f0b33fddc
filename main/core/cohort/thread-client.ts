/**
 * The caller's side of a cohort thread (thread.ts): the same operations as CaseRunner — check a
 * case, run a case — answered from a worker thread that keeps the model loaded.
 */
import type { Worker } from 'node:worker_threads';
import { CancelledError } from '../errors.ts';
import { currentReadScope, type ReadScope } from '../util/fs.ts';
import { rebuildError, startTsWorker, type SerializedError } from '../util/worker.ts';
import { CaseFailedError, type CaseExecutor, type CaseRunOptions, type CohortRunSettings } from './case-run.ts';
import type { CohortCase } from './find.ts';
import type { CaseRecord, FailureRecord, RunFingerprint } from './record.ts';
import type { ModelChoice } from './study-run.ts';

export type HostMessage =
  | { type: 'init'; id: number; settings: CohortRunSettings; substituteHint?: string; workerName?: string; readScope?: ReadScope }
  | { type: 'check'; id: number; entry: CohortCase; out: string; readScope?: ReadScope }
  | { type: 'run'; id: number; entry: CohortCase; out: string; inputHash?: string; readScope?: ReadScope }
  | { type: 'cancel'; id: number }
  | { type: 'dispose' };

export type ThreadMessage =
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'failed'; id: number; failure: FailureRecord; error: SerializedError }
  | { type: 'slice'; id: number; done: number; total: number }
  | { type: 'note'; text: string }
  | { type: 'model'; provider: string; loadMs: number; cached: boolean };

type WithoutId<M> = M extends unknown ? Omit<M, 'id' | 'readScope'> : never;
type CallMessage = WithoutId<Extract<HostMessage, { type: 'init' | 'check' | 'run' }>>;

const ENTRY = new URL('./thread.ts', import.meta.url);

export interface CohortThreadOptions {
  onNote?: (text: string) => void;
  onModelReady?: (info: { provider: string; loadMs: number; cached: boolean }) => void;
  /** how a missing sequence may be substituted, in the front end's words */
  substituteHint?: string;
  /** who runs the cases, in their records (a queue worker's name) */
  workerName?: string;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  onSlice?: (done: number, total: number) => void;
}

export class CohortThread implements CaseExecutor {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #options: CohortThreadOptions;
  #nextId = 1;
  #ended: Error | null = null;
  choice!: ModelChoice;
  fingerprint!: RunFingerprint;

  private constructor(options: CohortThreadOptions) {
    this.#options = options;
    this.#worker = startTsWorker(ENTRY);
    this.#worker.on('message', (m: ThreadMessage) => this.#onMessage(m));
    const fail = (err: Error) => {
      this.#ended ??= err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', (err) => fail(new Error(`the cohort thread failed: ${err instanceof Error ? err.message : String(err)}`)));
    this.#worker.on('exit', (code) => fail(new Error(`the cohort thread stopped (exit code ${code})`)));
  }

  /** Starts a thread for `settings` (the model is chosen and hashed now, loaded by the first case). */
  static async start(settings: CohortRunSettings, options: CohortThreadOptions = {}): Promise<CohortThread> {
    const thread = new CohortThread(options);
    try {
      const { choice, fingerprint } = (await thread.#call({
        type: 'init',
        settings,
        ...(options.substituteHint ? { substituteHint: options.substituteHint } : {}),
        ...(options.workerName ? { workerName: options.workerName } : {}),
      })) as { choice: ModelChoice; fingerprint: RunFingerprint };
      thread.choice = choice;
      thread.fingerprint = fingerprint;
      return thread;
    } catch (err) {
      await thread.dispose();
      throw err;
    }
  }

  #onMessage(m: ThreadMessage): void {
    if (m.type === 'note') return this.#options.onNote?.(m.text);
    if (m.type === 'model') return this.#options.onModelReady?.(m);
    const pending = this.#pending.get(m.id);
    if (!pending) return;
    if (m.type === 'slice') return pending.onSlice?.(m.done, m.total);
    this.#pending.delete(m.id);
    if (m.type === 'result') pending.resolve(m.value);
    else if (m.type === 'failed') pending.reject(new CaseFailedError(m.failure, rebuildError(m.error)));
    else pending.reject(rebuildError(m.error));
  }

  #call(message: CallMessage, opts: { signal?: AbortSignal; onSlice?: Pending['onSlice'] } = {}): Promise<unknown> {
    if (this.#ended) return Promise.reject(this.#ended);
    if (opts.signal?.aborted) return Promise.reject(new CancelledError());
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.#worker.postMessage({ type: 'cancel', id } satisfies HostMessage);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => opts.signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        ...(opts.onSlice ? { onSlice: opts.onSlice } : {}),
      });
      // what the caller may read, the thread may read (read-roots.ts)
      this.#worker.postMessage({ ...message, id, readScope: currentReadScope() } as HostMessage);
    });
  }

  upToDate(entry: CohortCase, out: string): Promise<{ record: CaseRecord | null; inputHash: string }> {
    return this.#call({ type: 'check', entry, out }) as Promise<{ record: CaseRecord | null; inputHash: string }>;
  }

  /** Segments one case; rejects with CaseFailedError (recorded), CancelledError or an Error (the model could not load). */
  run(entry: CohortCase, out: string, opts: CaseRunOptions = {}): Promise<CaseRecord> {
    return this.#call({ type: 'run', entry, out, ...(opts.inputHash ? { inputHash: opts.inputHash } : {}) }, opts) as Promise<CaseRecord>;
  }

  /** Cancels what runs, releases the model and ends the thread. */
  async dispose(): Promise<void> {
    if (this.#ended) return;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.postMessage({ type: 'dispose' } satisfies HostMessage);
    // a thread stuck in native code is ended all the same
    const timer = setTimeout(() => void this.#worker.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
