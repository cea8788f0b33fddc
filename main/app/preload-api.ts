/**
 * The object the preload exposes as `window.sam2unet`: exactly the api.ts ClientApi, each call
 * one `invoke` on the single IPC channel, replies unwrapped into values or ApiCallErrors. Kept
 * free of Electron imports so that its shape is tested without Electron.
 */
import { API_METHODS, ApiCallError, eventValidator } from '../core/api.ts';
import type { ApiEvent, ClientApi, Reply, WorkstationApi } from '../core/api.ts';

export const CALL_CHANNEL = 'sam2unet:call';
export const EVENT_CHANNEL = 'sam2unet:event';

/** The part of ipcRenderer the preload uses. */
export interface RendererIpc {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

export function createPreloadApi(ipc: RendererIpc): ClientApi {
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
  return {
    ...api,
    onEvent(listener: (event: ApiEvent) => void) {
      const wrapped = (_event: unknown, payload: unknown) => {
        const problem = eventValidator(payload, 'event');
        if (problem) console.error(`dropped an invalid event: ${problem}`);
        else listener(payload as ApiEvent);
      };
      ipc.on(EVENT_CHANNEL, wrapped);
      return () => void ipc.removeListener(EVENT_CHANNEL, wrapped);
    },
  };
}
