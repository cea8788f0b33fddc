/**
 * The caller's side of a cohort thread (thread.ts): the same operations as CaseRunner — check a
 * case, run a case — answered over the channel (rpc/channel.ts) from a worker thread that keeps
 * the model loaded.
 */
import type { Worker } from 'node:worker_threads';
import { ChannelClient } from '../rpc/channel.ts';
import { decodeError, type WireError } from '../rpc/errors.ts';
import { nodePortTransport } from '../rpc/ports.ts';
import { currentReadScope, type ReadScope } from '../util/fs.ts';
import { startTsWorker } from '../util/worker.ts';
import { CaseFailedError, type CaseExecutor, type CaseRunOptions, type CohortRunSettings } from './case-run.ts';
import type { CohortCase } from './find.ts';
import type { CaseRecord, FailureRecord, RunFingerprint } from './record.ts';
import type { ModelChoice } from './study-run.ts';

/** The thread's calls and what they carry (each with the caller's read roots). */
export interface CohortThreadCalls {
  init: { settings: CohortRunSettings; substituteHint?: string; workerName?: string; readScope?: ReadScope };
  check: { entry: CohortCase; out: string; readScope?: ReadScope };
  run: { entry: CohortCase; out: string; inputHash?: string; readScope?: ReadScope };
}
/** What the thread says while it works, beside its calls' replies. */
export type ThreadEvent = { type: 'note'; text: string } | { type: 'model'; provider: string; loadMs: number; cached: boolean };
type RunReply = { record: CaseRecord } | { failed: { failure: FailureRecord; error: WireError } };

const ENTRY = new URL('./thread.ts', import.meta.url);

export interface CohortThreadOptions {
  onNote?: (text: string) => void;
  onModelReady?: (info: { provider: string; loadMs: number; cached: boolean }) => void;
  /** how a missing sequence may be substituted, in the front end's words */
  substituteHint?: string;
  /** who runs the cases, in their records (a queue worker's name) */
  workerName?: string;
}

export class CohortThread implements CaseExecutor {
  readonly #worker: Worker;
  readonly #channel: ChannelClient;
  #disposed = false;
  choice!: ModelChoice;
  fingerprint!: RunFingerprint;

  private constructor(options: CohortThreadOptions) {
    this.#worker = startTsWorker(ENTRY);
    this.#channel = new ChannelClient(nodePortTransport(this.#worker, 'the cohort thread'));
    this.#channel.onEvent((event) => {
      const e = event as ThreadEvent;
      if (e.type === 'note') options.onNote?.(e.text);
      else options.onModelReady?.(e);
    });
  }

  /** Starts a thread for `settings` (the model is chosen and hashed now, loaded by the first case). */
  static async start(settings: CohortRunSettings, options: CohortThreadOptions = {}): Promise<CohortThread> {
    const thread = new CohortThread(options);
    try {
      const request: CohortThreadCalls['init'] = {
        settings,
        ...(options.substituteHint ? { substituteHint: options.substituteHint } : {}),
        ...(options.workerName ? { workerName: options.workerName } : {}),
        readScope: currentReadScope(),
      };
      const { choice, fingerprint } = await thread.#channel.call<{ choice: ModelChoice; fingerprint: RunFingerprint }>('init', request);
      thread.choice = choice;
      thread.fingerprint = fingerprint;
      return thread;
    } catch (err) {
      await thread.dispose();
      throw err;
    }
  }

  upToDate(entry: CohortCase, out: string): Promise<{ record: CaseRecord | null; inputHash: string }> {
    const request: CohortThreadCalls['check'] = { entry, out, readScope: currentReadScope() };
    return this.#channel.call('check', request);
  }

  /** Segments one case; rejects with CaseFailedError (recorded), CancelledError or an Error (the model could not load). */
  async run(entry: CohortCase, out: string, opts: CaseRunOptions = {}): Promise<CaseRecord> {
    const request: CohortThreadCalls['run'] = { entry, out, ...(opts.inputHash ? { inputHash: opts.inputHash } : {}), readScope: currentReadScope() };
    const reply = await this.#channel.call<RunReply>('run', request, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onSlice ? { onProgress: (p) => opts.onSlice!((p as { done: number }).done, (p as { total: number }).total) } : {}),
    });
    if ('failed' in reply) throw new CaseFailedError(reply.failed.failure, decodeError(reply.failed.error));
    return reply.record;
  }

  /** Cancels what runs, releases the model and ends the thread. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    void this.#channel.call('dispose', null).catch(() => undefined);
    // a thread stuck in native code is ended all the same
    const timer = setTimeout(() => void this.#worker.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
    this.#channel.close('the cohort thread was disposed');
  }
}
