/**
 * The renderer's only door to the services: the Electron preload's `window.sam2unet`, or, in
 * browser mode, the same api.ts over the web bridge's WebSocket.
 */
import {
  API_METHODS,
  ApiCallError,
  decodeFrame,
  encodeFrame,
  eventValidator,
  replyValidators,
} from '../../../main/core/api.ts';
import type { ApiEvent, ApiMethod, ClientApi, Reply, ServerMessage, WorkstationApi } from '../../../main/core/api.ts';

declare global {
  interface Window {
    sam2unet?: ClientApi;
  }
}

export function connect(): Promise<ClientApi> {
  if (window.sam2unet) return Promise.resolve(window.sam2unet);
  return connectWebSocket(new URL('api', window.location.href.replace(/^http/, 'ws')).href);
}

function connectWebSocket(url: string): Promise<ClientApi> {
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  const pending = new Map<number, { method: ApiMethod; resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  const listeners = new Set<(event: ApiEvent) => void>();
  let nextId = 1;
  let closedReason: string | null = null;

  socket.addEventListener('message', (message) => {
    let decoded: ServerMessage;
    try {
      decoded = decodeFrame(new Uint8Array(message.data as ArrayBuffer)) as ServerMessage;
    } catch (err) {
      console.error('dropped a malformed message from the server', err);
      return;
    }
    if (decoded.kind === 'event') {
      const problem = eventValidator(decoded.event, 'event');
      if (problem) return console.error(`dropped an invalid event: ${problem}`);
      for (const listener of listeners) listener(decoded.event);
      return;
    }
    const call = pending.get(decoded.id);
    if (!call) return;
    pending.delete(decoded.id);
    const reply = decoded as Reply;
    if (!reply.ok) return call.reject(new ApiCallError(call.method, reply.error));
    const problem = replyValidators[call.method]?.(reply.value, call.method);
    if (problem) return call.reject(new Error(`the server sent an invalid reply: ${problem}`));
    call.resolve(reply.value);
  });

  socket.addEventListener('close', () => {
    closedReason = 'the connection to the workstation server was lost; restart `sam2unet serve` and reload';
    for (const call of pending.values()) call.reject(new Error(closedReason));
    pending.clear();
  });

  const call = (method: ApiMethod, request: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      if (closedReason) return reject(new Error(closedReason));
      const id = nextId++;
      pending.set(id, { method, resolve, reject });
      socket.send(encodeFrame({ kind: 'call', id, method, request }));
    });

  const api = Object.fromEntries(API_METHODS.map((method) => [method, (request: unknown) => call(method, request)])) as unknown as WorkstationApi;
  const client: ClientApi = {
    ...api,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };

  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve(client), { once: true });
    socket.addEventListener('error', () => reject(new Error(`could not connect to the workstation server at ${url}`)), { once: true });
  });
}
