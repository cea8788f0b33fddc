/**
 * The renderer's only door to the services: the Electron preload's `window.sam2unet`, or, in
 * browser mode, the same api.ts over the channel (main/core/rpc) on the web bridge's WebSocket:
 * one binary frame per message, replies and events in the order the server sent them.
 */
import type { ClientApi } from '../../../main/core/api.ts';
import { apiClient } from '../../../main/core/rpc/api-channel.ts';
import type { Transport } from '../../../main/core/rpc/channel.ts';
import { decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';

declare global {
  interface Window {
    sam2unet?: ClientApi;
  }
}

export function connect(): Promise<ClientApi> {
  if (window.sam2unet) return Promise.resolve(window.sam2unet);
  return connectWebSocket(new URL('api', window.location.href.replace(/^http/, 'ws')).href);
}

function webSocketTransport(socket: WebSocket): Transport {
  return {
    send: (message) => socket.send(encodeFrame(message)),
    onMessage(listener) {
      const onMessage = (message: MessageEvent) => {
        let decoded: unknown;
        try {
          decoded = decodeFrame(new Uint8Array(message.data as ArrayBuffer));
        } catch (err) {
          console.error('dropped a malformed message from the server', err);
          return;
        }
        listener(decoded);
      };
      socket.addEventListener('message', onMessage);
      return () => socket.removeEventListener('message', onMessage);
    },
    onClose(listener) {
      const onClose = () => listener('the connection to the workstation server was lost; restart `sam2unet serve` and reload');
      socket.addEventListener('close', onClose);
      return () => socket.removeEventListener('close', onClose);
    },
  };
}

function connectWebSocket(url: string): Promise<ClientApi> {
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  const { api } = apiClient(webSocketTransport(socket));
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve(api), { once: true });
    socket.addEventListener('error', () => reject(new Error(`could not connect to the workstation server at ${url}`)), { once: true });
  });
}
