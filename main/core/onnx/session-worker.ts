/**
 * The inference worker: owns one InferenceSession, served on the channel (rpc/channel.ts) over
 * its parent port: 'create' once, then 'run' calls, answered in order. Output buffers are
 * transferred back to the calling thread.
 */
import { parentPort } from 'node:worker_threads';
import { ChannelServer } from '../rpc/channel.ts';
import { nodePortTransport, transferList } from '../rpc/ports.ts';
import { yieldToInteractiveThreads } from '../util/worker.ts';
import { loadOrt, openSession, type OpenedSession, type Ort, type SessionReady, type SessionWorkerCalls } from './session.ts';

yieldToInteractiveThreads();
const port = parentPort;
if (!port) throw new Error('session-worker.ts must run in a worker thread');

let opened: OpenedSession | undefined;
let ort: Ort | undefined;

new ChannelServer(nodePortTransport(port, 'the session client'), {
  stacks: true,
  handlers: {
    async create(request, { progress }): Promise<SessionReady> {
      const { model, options } = request as SessionWorkerCalls['create']['request'];
      ort = await loadOrt();
      opened = await openSession(model, { ...options, onMessage: (message) => progress(message) });
      const { session } = opened;
      return { provider: opened.provider, threads: opened.threads, messages: opened.messages, inputNames: [...session.inputNames], outputNames: [...session.outputNames] };
    },
    async run(request, { transferReply }): Promise<SessionWorkerCalls['run']['reply']> {
      if (!opened || !ort) throw new Error('no session: create it first');
      const { feeds } = request as SessionWorkerCalls['run']['request'];
      const tensors: Record<string, import('onnxruntime-node').Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor('float32', t.data, t.dims);
      const results = await opened.session.run(tensors);
      const outputs: SessionWorkerCalls['run']['reply'] = {};
      for (const [name, t] of Object.entries(results)) {
        if (t.type !== 'float32') throw new Error(`output "${name}" is ${t.type}, expected float32`);
        outputs[name] = { dims: [...t.dims], data: t.data as Float32Array };
      }
      transferReply(transferList(Object.values(outputs).map((o) => o.data)));
      return outputs;
    },
  },
});
