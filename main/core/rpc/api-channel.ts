/**
 * The workstation's API (api.ts) on the channel (channel.ts): the server side serves a service's
 * methods and streams its events, with every request checked against the contract; the client
 * side is the ClientApi the renderer holds, with every reply and event checked against it. The
 * Electron page (over its MessagePort) and the browser (over the WebSocket) use exactly this.
 *
 * Free of Node and DOM imports: the preload and the renderer bundle the client.
 */
import { API_METHODS, ApiEvent, isApiMethod, validateReply, validateRequest, type ApiMethod, type ClientApi, type WorkstationApi } from '../api.ts';
import { s } from '../schema.ts';
import { CancelMessage, ChannelClient, ChannelServer, Dispatcher, type Handler, type Reply, type ServerMessage as ChannelServerMessage, type Transport } from './channel.ts';
import { ApiCallError } from './errors.ts';

/** What the API's server sends: replies and the API's events. */
export type ServerMessage = ChannelServerMessage<ApiEvent>;

/** A service that also tells what happens (job progress, menu commands). */
export interface EventSource {
  onEvent(listener: (event: ApiEvent) => void): () => void;
}

export interface ApiServerOptions {
  log?: (line: string) => void;
  /** wraps every call (the read roots of the connection) */
  around?: <T>(run: () => Promise<T>) => Promise<T>;
}

/** The service's methods as channel handlers (requests already checked by the dispatcher). */
export function apiHandlers(service: WorkstationApi): Record<string, Handler> {
  return Object.fromEntries(API_METHODS.map((method) => [method, (request: unknown) => (service[method] as (r: unknown) => Promise<unknown>).call(service, request)]));
}

/**
 * Every call of the API, from whatever transport: checked against the contract, then run on
 * `service`. `extra`: calls a transport adds beside the API (they check their own requests).
 */
export function apiDispatcher(service: WorkstationApi, options: ApiServerOptions = {}, extra: Record<string, Handler> = {}): Dispatcher {
  return new Dispatcher({
    handlers: { ...apiHandlers(service), ...extra },
    checkRequest: (method, request) => (Object.prototype.hasOwnProperty.call(extra, method) ? null : validateRequest(method, request)),
    ...(options.log ? { log: options.log } : {}),
    ...(options.around ? { around: options.around } : {}),
  });
}

/** What a client of the API may send: a call of one of its methods, or a cancellation. */
export const clientMessageValidator = s.union('kind', {
  call: s.object({ kind: s.literal(['call']), id: s.number({ int: true, min: 0 }), method: s.literal(API_METHODS), request: s.present() }),
  cancel: CancelMessage,
});

/** One call through the API's dispatcher without a transport: what a connection would reply. */
export function dispatch(service: WorkstationApi, method: unknown, request: unknown, log: (line: string) => void): Promise<Reply> {
  return apiDispatcher(service, { log }).handle(method, request);
}

/**
 * Serves `service` on one connection: its calls through `dispatcher`, its events on the same
 * stream. Returns what ends it (the connection's own close ends it too).
 */
export function serveApi(transport: Transport, service: EventSource, dispatcher: Dispatcher, extraMethods: readonly string[] = []): () => void {
  const envelope = extraMethods.length
    ? s.union('kind', { call: s.object({ kind: s.literal(['call']), id: s.number({ int: true, min: 0 }), method: s.literal([...API_METHODS, ...extraMethods]), request: s.present() }), cancel: CancelMessage })
    : clientMessageValidator;
  const server = new ChannelServer(transport, dispatcher, envelope);
  const unsubscribe = service.onEvent((event) => server.emit(event));
  const close = () => {
    unsubscribe();
    server.close();
  };
  transport.onClose?.(close);
  return close;
}

/**
 * The renderer's API over one connection. A failed call rejects with an ApiCallError that keeps
 * the server's message and whether it is meant for the user; a reply or event that breaks the
 * contract is refused here, so a server bug never becomes a renderer crash.
 */
export function apiClient(transport: Transport, options: { log?: (line: string) => void } = {}): { api: ClientApi; channel: ChannelClient } {
  const channel = new ChannelClient(transport, {
    checkReply: (method, value) => (isApiMethod(method) ? validateReply(method, value) : null),
    checkEvent: ApiEvent,
    callError: (method, error) => new ApiCallError(method, error),
    ...(options.log ? { log: options.log } : {}),
  });
  const methods = Object.fromEntries(API_METHODS.map((method: ApiMethod) => [method, (request: unknown) => channel.call(method, request)])) as unknown as WorkstationApi;
  const api: ClientApi = {
    ...methods,
    onEvent: (listener) => channel.onEvent(listener as (event: unknown) => void),
  };
  return { api, channel };
}
