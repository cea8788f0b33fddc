/**
 * Cohort cases in a worker thread of their own (started by thread-client.ts), served on the
 * channel (rpc/channel.ts): the model stays loaded there between cases, and the caller's event
 * loop stays free — the app's service keeps answering the UI, a queue worker keeps renewing its
 * job locks — while a study is read, segmented, measured and written.
 */
import { parentPort } from 'node:worker_threads';
import { ChannelServer } from '../rpc/channel.ts';
import { encodeError } from '../rpc/errors.ts';
import { nodePortTransport } from '../rpc/ports.ts';
import { withReadScope } from '../util/fs.ts';
import { yieldToInteractiveThreads } from '../util/worker.ts';
import { CaseFailedError, CaseRunner } from './case-run.ts';
import type { CohortThreadCalls, ThreadEvent } from './thread-client.ts';

yieldToInteractiveThreads();
const port = parentPort;
if (!port) throw new Error('cohort/thread.ts must run in a worker thread');
let runner: CaseRunner | undefined;
const ready = (): CaseRunner => {
  if (!runner) throw new Error('the cohort thread was not initialised');
  return runner;
};

const server: ChannelServer = new ChannelServer(nodePortTransport(port, 'the cohort thread client'), {
  stacks: true,
  handlers: {
    async init(request) {
      const { settings, substituteHint, workerName, readScope } = request as CohortThreadCalls['init'];
      const emit = (event: ThreadEvent) => server.emit(event);
      return withReadScope(readScope, async () => {
        runner = await CaseRunner.create(settings, {
          onNote: (text) => emit({ type: 'note', text }),
          onModelLoading: () => emit({ type: 'note', text: 'loading the model …' }),
          onModelReady: (model) => emit({ type: 'model', provider: model.provider, loadMs: model.loadMs, cached: model.cached }),
          ...(substituteHint ? { substituteHint: () => substituteHint } : {}),
          ...(workerName ? { workerName } : {}),
        });
        return { choice: runner.choice, fingerprint: runner.fingerprint };
      });
    },
    async check(request) {
      const { entry, out, readScope } = request as CohortThreadCalls['check'];
      return withReadScope(readScope, () => ready().upToDate(entry, out));
    },
    /** a case that failed for a reason in its data is a result (recorded), not an error of the call */
    async run(request, { signal, progress }) {
      const { entry, out, inputHash, readScope } = request as CohortThreadCalls['run'];
      return withReadScope(readScope, async () => {
        try {
          const record = await ready().run(entry, out, { signal, ...(inputHash ? { inputHash } : {}), onSlice: (done, total) => progress({ done, total }) });
          return { record };
        } catch (err) {
          if (err instanceof CaseFailedError) return { failed: { failure: err.failure, error: encodeError(err.cause, { stack: true }) } };
          throw err;
        }
      });
    },
    async dispose() {
      server.close();
      await runner?.dispose();
      setImmediate(() => process.exit(0));
      return null;
    },
  },
});
