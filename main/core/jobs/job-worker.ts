/**
 * The job worker's entry point (started by job-host.ts): serves the jobs of worker-jobs.ts on the
 * channel (rpc/channel.ts) over its parent port, streaming their events as the calls' progress.
 */
import { parentPort } from 'node:worker_threads';
import { ChannelServer, type CallContext } from '../rpc/channel.ts';
import { nodePortTransport } from '../rpc/ports.ts';
import { withReadScope } from '../util/fs.ts';
import { yieldToInteractiveThreads } from '../util/worker.ts';
import type { JobKind, JobKinds, JobRequest } from './kinds.ts';
import { releaseModels } from './model-cache.ts';
import { inspectCheckpoint, runDescribeJob, runOpenJob, runPacsOpenJob, runRolesJob, runSegmentJob, runTrainJob, settlePacsCaches } from './worker-jobs.ts';

yieldToInteractiveThreads();
const port = parentPort;
if (!port) throw new Error('job-worker.ts must run in a worker thread');

type Runner<K extends JobKind> = (payload: JobKinds[K]['payload'], context: CallContext) => Promise<JobKinds[K]['result']>;

const runners: { [K in JobKind]: Runner<K> } = {
  open: (payload) => runOpenJob(payload),
  pacsOpen: (payload, { signal, progress }) => runPacsOpenJob(payload, progress, signal),
  pacsSettle: ({ cacheDir }) => settlePacsCaches(cacheDir),
  roles: (payload) => runRolesJob(payload),
  describe: (payload) => runDescribeJob(payload),
  inspect: (payload) => inspectCheckpoint(payload),
  segment: (payload, { signal, progress }) => runSegmentJob(payload, progress, signal),
  train: (payload, { signal, progress }) => runTrainJob(payload, progress, signal),
};

const handlers = Object.fromEntries(
  Object.entries(runners).map(([kind, run]) => [
    kind,
    (request: unknown, context: CallContext) => {
      const { payload, readScope } = request as JobRequest<JobKind>;
      // the caller's read roots hold for what the job opens here
      return withReadScope(readScope, () => (run as Runner<JobKind>)(payload, context));
    },
  ]),
);

const server = new ChannelServer(nodePortTransport(port, 'the job host'), {
  handlers: {
    ...handlers,
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
