/**
 * Transports (channel.ts) over the message ports the app uses: Node's Worker / parentPort /
 * MessagePort (job and session workers), Electron's MessagePortMain (the main side of the page's
 * port) and the DOM MessagePort (the preload's side). They differ only in how a message arrives
 * and what can be transferred, which is all these adapters say.
 *
 * Free of Node and DOM imports (structural types only): the preload bundles it.
 */
import type { ChannelMessage, Transport } from './channel.ts';

/** Worker, parentPort, Node's MessagePort: `on('message', data)`, ArrayBuffers transferable. */
export interface NodePortLike {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (data: unknown) => void): unknown;
  off(event: 'message', listener: (data: unknown) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/**
 * Posts with the buffers transferred; buffers that refuse transfer (Node's pooled Buffer memory,
 * native-owned memory) are cloned instead, so a caller's odd buffer costs a copy, never a failure.
 */
export function postTransferring(port: { postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void }, message: unknown, transfer: readonly ArrayBuffer[]): void {
  try {
    port.postMessage(message, transfer);
  } catch (err) {
    if ((err as Error).name !== 'DataCloneError' || transfer.length === 0) throw err;
    port.postMessage(message);
  }
}

/** The ArrayBuffers to transfer for these typed arrays (each once; shared memory never). */
export function transferList(arrays: Iterable<ArrayBufferView>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) if (a.buffer instanceof ArrayBuffer && a.buffer.byteLength > 0) out.add(a.buffer);
  return [...out];
}

/** `label` names the other side in the message pending calls fail with when it goes away. */
export function nodePortTransport(port: NodePortLike, label = 'the worker'): Transport {
  return {
    send: (message, transfer = []) => postTransferring(port, message, transfer),
    onMessage(listener) {
      port.on('message', listener);
      return () => port.off('message', listener);
    },
    onClose(listener) {
      // a Worker says 'exit' (and 'error' before it when it threw); a port says 'close'
      port.on('error', (err) => listener(`${label} failed: ${err instanceof Error ? err.message : String(err)}`));
      port.on('exit', (code) => listener(`${label} stopped unexpectedly (exit code ${code})`));
      port.on('close', () => listener(`${label} closed the channel`));
      return () => {};
    },
  };
}

/** Electron's MessagePortMain: messages arrive as `{ data }`; only ports can be transferred. */
export interface ElectronPortLike {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (event: { data: unknown }) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  off(event: 'message', listener: (event: { data: unknown }) => void): unknown;
  start(): void;
}

/**
 * `prepare` adapts what Electron's structured clone cannot carry as it is (shared memory, views
 * into bigger buffers) just before sending.
 */
export function electronPortTransport(port: ElectronPortLike, prepare: (message: ChannelMessage) => ChannelMessage = (m) => m): Transport {
  const transport: Transport = {
    send: (message) => port.postMessage(prepare(message)),
    onMessage(listener) {
      const onMessage = (event: { data: unknown }) => listener(event.data);
      port.on('message', onMessage);
      return () => port.off('message', onMessage);
    },
    onClose(listener) {
      port.on('close', () => listener('the window closed its channel'));
      return () => {};
    },
  };
  port.start();
  return transport;
}

/** The DOM MessagePort (the preload's end of the page's channel): ArrayBuffers transferable. */
export interface DomPortLike {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  removeEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  start(): void;
}

export function domPortTransport(port: DomPortLike): Transport {
  const transport: Transport = {
    send: (message, transfer = []) => postTransferring({ postMessage: (m, t) => port.postMessage(m, [...(t ?? [])]) }, message, transfer),
    onMessage(listener) {
      const onMessage = (event: { data: unknown }) => listener(event.data);
      port.addEventListener('message', onMessage);
      return () => port.removeEventListener('message', onMessage);
    },
  };
  port.start();
  return transport;
}
