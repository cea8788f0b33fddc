/**
 * The object the preload exposes as `window.sam2unet`: exactly the api.ts ClientApi, each call
 * one `invoke` on the single IPC channel, replies unwrapped into values or ApiCallErrors. Kept
 * free of Electron imports so that its shape is tested without Electron.
 */
import { API_METHODS, ApiCallError, eventValidator } from '../core/api.ts';
import type { ApiEvent, ClientApi, Reply, WorkstationApi } from '../core/api.ts';

export const CALL_CHANNEL = 'sam2unet:call';
/** carries, once, the MessagePort on which every event then streams */
export const EVENT_CHANNEL = 'sam2unet:event';
export const DROP_CHANNEL = 'sam2unet:drop';

/** The part of ipcRenderer the preload uses. */
export interface RendererIpc {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

/** The part of a DOM MessagePort the preload uses. */
interface EventPortLike {
  onmessage: ((message: { data: unknown }) => void) | null;
  start?(): void;
}

/**
 * `pathForFile` is Electron's webUtils.getPathForFile: it gives a path only for a File the user
 * really dropped or picked, so a page cannot invent one.
 */
export function createPreloadApi(ipc: RendererIpc, opts: { pathForFile?: (file: File) => string } = {}): ClientApi {
  const api = Object.fromEntries(
    API_METHODS.map((method) => [
      method,
      async (request: unknown) => {
        const reply = (await ipc.invoke(CALL_CHANNEL, method, request)) as Reply;
        if (!reply.ok) throw new ApiCallError(method, reply.error);
        return reply.value;
      },
    ]),
  ) as unknown as WorkstationApi;
  const listeners = new Set<(event: ApiEvent) => void>();
  const deliver = (payload: unknown) => {
    const problem = eventValidator(payload, 'event');
    if (problem) {
      console.error(`dropped an invalid event: ${problem}`);
      return;
    }
    for (const listener of listeners) listener(payload as ApiEvent);
  };
  ipc.on(EVENT_CHANNEL, (event) => {
    const port = (event as { ports?: EventPortLike[] }).ports?.[0];
    if (!port) return;
    port.onmessage = (message) => deliver(message.data);
    port.start?.();
  });
  return {
    ...api,
    onEvent(listener: (event: ApiEvent) => void) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    ...(opts.pathForFile
      ? {
          async openDropped(file: File) {
            const path = opts.pathForFile!(file);
            if (!path) throw new Error('this item has no path on disk (drop files or folders from the file manager)');
            const reply = (await ipc.invoke(DROP_CHANNEL, path)) as Reply;
            if (!reply.ok) throw new ApiCallError('openDropped', reply.error);
            return api.openStudy({ path });
          },
        }
      : {}),
  };
}
