/** The job worker's entry point (started by job-host.ts): runs jobs, streams their events. */
import { parentPort } from 'node:worker_threads';
import { postTransferring } from '../onnx/session.ts';
import { withReadScope } from '../util/fs.ts';
import { serializeError, yieldToInteractiveThreads } from '../util/worker.ts';
import { ControlInbox, type HostMessage, type JobKinds, type WorkerMessage, inspectCheckpoint, releaseModels, runDescribeJob, runOpenJob, runPrepareJob, runRolesJob, runSegmentJob, runTrainJob } from './worker-jobs.ts';

yieldToInteractiveThreads();
const port = parentPort!;
const running = new Map<number, AbortController>();
const inboxes = new Map<number, ControlInbox>();

const send = (message: WorkerMessage, transfer: ArrayBuffer[] = []) => postTransferring(port, message, transfer);

async function start(id: number, kind: keyof JobKinds, payload: unknown): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  const inbox = new ControlInbox();
  inboxes.set(id, inbox);
  const post = (event: unknown, transfer?: ArrayBuffer[]) => send({ type: 'event', id, event }, transfer);
  try {
    const value =
      kind === 'segment'
        ? await runSegmentJob(payload as JobKinds['segment']['payload'], post, controller.signal, inbox)
        : kind === 'prepare'
          ? await runPrepareJob(payload as JobKinds['prepare']['payload'], post, controller.signal)
        : kind === 'train'
          ? await runTrainJob(payload as JobKinds['train']['payload'], post, controller.signal)
          : kind === 'open'
            ? await runOpenJob(payload as JobKinds['open']['payload'])
            : kind === 'roles'
              ? await runRolesJob(payload as JobKinds['roles']['payload'])
              : kind === 'describe'
                ? await runDescribeJob(payload as JobKinds['describe']['payload'])
                : await inspectCheckpoint(payload as JobKinds['inspect']['payload']);
    send({ type: 'result', id, value });
  } catch (err) {
    send({ type: 'error', id, error: serializeError(err) });
  } finally {
    running.delete(id);
    inboxes.delete(id);
  }
}

port.on('message', (m: HostMessage) => {
  if (m.type === 'start') void withReadScope(m.readScope, () => start(m.id, m.kind, m.payload));
  else if (m.type === 'cancel') running.get(m.id)?.abort();
  else if (m.type === 'control') inboxes.get(m.id)?.deliver(m.message);
  else if (m.type === 'dispose') {
    for (const controller of running.values()) controller.abort();
    void releaseModels().finally(() => process.exit(0));
  }
});
