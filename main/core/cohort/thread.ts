/**
 * Cohort cases in a worker thread of their own (started by thread-client.ts): the model stays
 * loaded there between cases, and the caller's event loop stays free — the app's service keeps
 * answering the UI, a queue worker keeps renewing its job locks — while a study is read,
 * segmented, measured and written.
 */
import { parentPort } from 'node:worker_threads';
import { CancelledError } from '../errors.ts';
import { withReadScope } from '../util/fs.ts';
import { serializeError, yieldToInteractiveThreads } from '../util/worker.ts';
import { CaseFailedError, CaseRunner } from './case-run.ts';
import type { HostMessage, ThreadMessage } from './thread-client.ts';

yieldToInteractiveThreads();
const port = parentPort!;
const send = (message: ThreadMessage) => port.postMessage(message);
const running = new Map<number, AbortController>();
let runner: CaseRunner | undefined;

async function handle(m: Exclude<HostMessage, { type: 'cancel' | 'dispose' }>): Promise<void> {
  const controller = new AbortController();
  running.set(m.id, controller);
  try {
    switch (m.type) {
      case 'init': {
        const hint = m.substituteHint;
        runner = await CaseRunner.create(m.settings, {
          onNote: (text) => send({ type: 'note', text }),
          onModelLoading: () => send({ type: 'note', text: 'loading the model …' }),
          onModelReady: (model) => send({ type: 'model', provider: model.provider, loadMs: model.loadMs, cached: model.cached }),
          ...(hint ? { substituteHint: () => hint } : {}),
          ...(m.workerName ? { workerName: m.workerName } : {}),
        });
        send({ type: 'result', id: m.id, value: { choice: runner.choice, fingerprint: runner.fingerprint } });
        break;
      }
      case 'check': {
        if (!runner) throw new Error('the cohort thread was not initialised');
        send({ type: 'result', id: m.id, value: await runner.upToDate(m.entry, m.out) });
        break;
      }
      case 'run': {
        if (!runner) throw new Error('the cohort thread was not initialised');
        const record = await runner.run(m.entry, m.out, {
          signal: controller.signal,
          ...(m.inputHash ? { inputHash: m.inputHash } : {}),
          onSlice: (done, total) => send({ type: 'slice', id: m.id, done, total }),
        });
        send({ type: 'result', id: m.id, value: record });
        break;
      }
    }
  } catch (err) {
    if (err instanceof CaseFailedError) send({ type: 'failed', id: m.id, failure: err.failure, error: serializeError(err.cause) });
    else send({ type: 'error', id: m.id, error: serializeError(err instanceof CancelledError ? new CancelledError() : err) });
  } finally {
    running.delete(m.id);
  }
}

port.on('message', (m: HostMessage) => {
  if (m.type === 'cancel') running.get(m.id)?.abort();
  else if (m.type === 'dispose') {
    for (const controller of running.values()) controller.abort();
    void (runner?.dispose() ?? Promise.resolve()).finally(() => process.exit(0));
  } else void withReadScope(m.readScope, () => handle(m));
});
