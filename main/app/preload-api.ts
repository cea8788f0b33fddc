/**
 * The object the preload exposes as `window.sam2unet`: exactly the api.ts ClientApi, over the
 * page's one channel (rpc/channel.ts) on a MessagePort the main process hands over at the
 * handshake — the only `invoke` there is. Calls made before the port arrives wait for it; replies
 * and events come down the one port in the order they were sent, and every reply and event is
 * checked against the contract here, before the page sees it. Kept free of Electron imports so
 * that it is tested without Electron.
 */
import type { ClientApi, OpenStudyResult, WorkstationApi } from '../core/api.ts';
import { API_METHODS } from '../core/api.ts';
import { apiClient } from '../core/rpc/api-channel.ts';
import type { ChannelMessage, Transport } from '../core/rpc/channel.ts';
import { domPortTransport, type DomPortLike } from '../core/rpc/ports.ts';

/** The handshake: asks the main process for the page's channel, which then arrives as a port on PORT_CHANNEL. */
export const CONNECT_CHANNEL = 'sam2unet:connect';
export const PORT_CHANNEL = 'sam2unet:port';
/** The preload-only call that grants a dropped path: on the channel, never in the page's API. */
export const GRANT_DROP = 'grantDrop';

/** The part of ipcRenderer the preload uses. */
export interface RendererIpc {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  once(channel: string, listener: (event: { ports?: readonly DomPortLike[] }, ...args: unknown[]) => void): unknown;
}

/**
 * A transport whose port arrives later: what is sent before is queued and goes out, in order,
 * once the port is there.
 */
function pendingPortTransport(port: Promise<DomPortLike>): Transport {
  let ready: Transport | undefined;
  const queue: [ChannelMessage, ArrayBuffer[] | undefined][] = [];
  const listeners = new Set<(message: unknown) => void>();
  void port.then((p) => {
    ready = domPortTransport(p);
    ready.onMessage((message) => listeners.forEach((listener) => listener(message)));
    for (const [message, transfer] of queue.splice(0)) ready.send(message, transfer);
  });
  return {
    send: (message, transfer) => (ready ? ready.send(message, transfer) : queue.push([message, transfer])),
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/**
 * `pathForFile` is Electron's webUtils.getPathForFile: it gives a path only for a File the user
 * really dropped or picked, so a page cannot invent one.
 */
export function createPreloadApi(ipc: RendererIpc, opts: { pathForFile?: (file: File) => string } = {}): ClientApi {
  const port = new Promise<DomPortLike>((resolve, reject) => {
    ipc.once(PORT_CHANNEL, (event) => (event.ports?.[0] ? resolve(event.ports[0]) : reject(new Error('the workstation sent no channel'))));
  });
  void ipc.invoke(CONNECT_CHANNEL).catch((err: unknown) => console.error('could not connect to the workstation', err));
  const { api, channel } = apiClient(pendingPortTransport(port));
  // contextBridge exposes own function properties: the ClientApi's methods, nothing of the channel
  const exposed: ClientApi = { ...(Object.fromEntries(API_METHODS.map((m) => [m, api[m]])) as unknown as WorkstationApi), onEvent: api.onEvent };
  if (!opts.pathForFile) return exposed;
  return {
    ...exposed,
    async openDropped(file: File): Promise<OpenStudyResult> {
      const path = opts.pathForFile!(file);
      if (!path) throw new Error('this item has no path on disk (drop files or folders from the file manager)');
      await channel.call(GRANT_DROP, path);
      return api.openStudy({ path });
    },
  };
}
