/**
 * The job worker's entry point (started by job-host.ts): serves the jobs of worker-jobs.ts on the
 * channel (rpc/channel.ts) over its parent port, streaming their events as the calls' progress.
 */
import { parentPort } from 'node:worker_threads';
import { ChannelServer, type CallContext } from '../rpc/channel.ts';
import { nodePortTransport } from '../rpc/ports.ts';
import { withReadScope } from '../util/fs.ts';
import { yieldToInteractiveThreads } from '../util/worker.ts';
import type { JobControl, JobKind, JobKinds, JobRequest } from './kinds.ts';
import { releaseModels } from './model-cache.ts';
import { ControlInbox, inspectCheckpoint, runDescribeJob, runMaskJob, runOpenJob, runPacsOpenJob, runPrepareJob, runReviewJob, runRolesJob, runSegmentJob, runTrainJob, settlePacsCaches } from './worker-jobs.ts';

yieldToInteractiveThreads();
const port = parentPort;
if (!port) throw new Error('job-worker.ts must run in a worker thread');

type Runner<K extends JobKind> = (payload: JobKinds[K]['payload'], context: CallContext, inbox: ControlInbox<JobControl<K>>) => Promise<JobKinds[K]['result']>;

/** the control messages of running jobs, by the key their request carries */
const inboxes = new Map<number, ControlInbox<unknown>>();

const runners: { [K in JobKind]: Runner<K> } = {
  open: (payload) => runOpenJob(payload),
  pacsOpen: (payload, { signal, progress }) => runPacsOpenJob(payload, progress, signal),
  pacsSettle: ({ cacheDir }) => settlePacsCaches(cacheDir),
  roles: (payload) => runRolesJob(payload),
  describe: (payload) => runDescribeJob(payload),
  inspect: (payload) => inspectCheckpoint(payload),
  segment: (payload, { signal, progress }, inbox) => runSegmentJob(payload, progress, signal, inbox),
  prepare: (payload, { signal }) => runPrepareJob(payload, signal),
  train: (payload, { signal, progress }) => runTrainJob(payload, progress, signal),
  mask: (payload) => runMaskJob(payload),
  review: (payload) => runReviewJob(payload),
};

const handlers = Object.fromEntries(
  Object.entries(runners).map(([kind, run]) => [
    kind,
    async (request: unknown, context: CallContext) => {
      const { payload, readScope, key } = request as JobRequest<JobKind>;
      // registered before anything is awaited: a control message that follows this call finds it
      const inbox = new ControlInbox<unknown>();
      inboxes.set(key, inbox);
      try {
        // the caller's read roots hold for what the job opens here
        return await withReadScope(readScope, () => (run as Runner<JobKind>)(payload, context, inbox as unknown as ControlInbox<never>));
      } finally {
        inboxes.delete(key);
      }
    },
  ]),
);

const server = new ChannelServer(nodePortTransport(port, 'the job host'), {
  handlers: {
    ...handlers,
    /** a message to a running job (dropped once the job has ended) */
    async control(request: unknown) {
      const { key, message } = request as { key: number; message: unknown };
      inboxes.get(key)?.deliver(message);
      return null;
    },
    /** releases the loaded models and lets PACS cache writes finish (a few seconds at most), then ends the worker once the reply is on its way */
    async dispose() {
      server.close();
      await Promise.all([releaseModels(), Promise.race([settlePacsCaches(), new Promise((done) => setTimeout(done, 4000).unref())])]);
      setImmediate(() => process.exit(0));
      return null;
    },
  },
  stacks: true,
});
