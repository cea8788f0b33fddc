/**
 * The inference worker: owns one InferenceSession; answers 'create' once, then 'run' messages in
 * order. Output buffers are transferred back to the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { errorMessage } from '../errors.ts';
import { yieldToInteractiveThreads } from '../util/worker.ts';
import { loadOrt, openSession, postTransferring, transferList, type OpenedSession, type Ort, type SessionOptions } from './session.ts';

interface CreateRequest {
  type: 'create';
  model: Uint8Array | string;
  options: SessionOptions;
}
interface RunRequest {
  type: 'run';
  id: number;
  feeds: Record<string, { dims: number[]; data: Float32Array }>;
}

yieldToInteractiveThreads();
const port = parentPort;
if (!port) throw new Error('session-worker.ts must run in a worker thread');

let opened: OpenedSession | undefined;
let ort: Ort | undefined;

function replyError(id: number, err: unknown): void {
  const e = err instanceof Error ? err : new Error(errorMessage(err));
  port!.postMessage({ type: 'error', id, name: e.name, message: e.message, stack: e.stack });
}

port.on('message', async (m: CreateRequest | RunRequest) => {
  if (m.type === 'create') {
    try {
      ort = await loadOrt();
      opened = await openSession(m.model, { ...m.options, onMessage: (message) => port.postMessage({ type: 'note', message }) });
      const { session } = opened;
      port.postMessage({
        type: 'ready',
        provider: opened.provider,
        threads: opened.threads,
        messages: opened.messages,
        inputNames: [...session.inputNames],
        outputNames: [...session.outputNames],
      });
    } catch (err) {
      replyError(0, err);
    }
    return;
  }
  if (m.type === 'run') {
    try {
      if (!opened || !ort) throw new Error('no session: create it first');
      const feeds: Record<string, import('onnxruntime-node').Tensor> = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
      const results = await opened.session.run(feeds);
      const outputs: Record<string, { dims: number[]; data: Float32Array }> = {};
      for (const [name, t] of Object.entries(results)) {
        if (t.type !== 'float32') throw new Error(`output "${name}" is ${t.type}, expected float32`);
        outputs[name] = { dims: [...t.dims], data: t.data as Float32Array };
      }
      postTransferring(port, { type: 'result', id: m.id, outputs }, transferList(Object.values(outputs).map((o) => o.data)));
    } catch (err) {
      replyError(m.id, err);
    }
  }
});
