/**
 * One channel for calls, cancellation and events over any ordered message stream (architecture.md,
 * "Wiring"), in the spirit of VS Code's base/parts/ipc: the Electron page's MessagePort, the
 * browser's WebSocket, and the worker threads of the job host and of each ONNX Runtime session all
 * speak it. One pending-call table (ChannelClient), one dispatcher (ChannelServer), one error codec
 * (errors.ts).
 *
 * Ordering: everything a server says on one connection — replies, a call's progress, broadcast
 * events — goes down one stream in the order it is said, so a client never sees an event of a job
 * before the reply that names the job, provided the job's events begin after its start call
 * returned (the service starts jobs on the next turn: api-service.ts #startJob).
 *
 * Free of Node and DOM imports: the renderer runs the client.
 */
import { CancelledError } from '../errors.ts';
import { s, type Schema } from '../schema.ts';
import { ContractError, ForbiddenError, InvalidRequestError, WireError, decodeError, encodeError } from './errors.ts';

/** An ordered, bidirectional message stream. */
export interface Transport {
  /** `transfer`: buffers to move rather than copy where the stream can (ports between threads) */
  send(message: ChannelMessage, transfer?: ArrayBuffer[]): void;
  /** subscribes to incoming messages (already decoded, not yet validated); returns the unsubscribe */
  onMessage(listener: (message: unknown) => void): () => void;
  /** the stream ended (socket closed, worker exited): pending calls fail with `reason` */
  onClose?(listener: (reason: string) => void): () => void;
}

const callId = s.number({ int: true, min: 0 });
export const CallMessage = s.object({ kind: s.literal(['call']), id: callId, method: s.string({ max: 256, nonEmpty: true }), request: s.present() });
export const CancelMessage = s.object({ kind: s.literal(['cancel']), id: callId });
const ReplyMessage = s.refine(
  s.object({ kind: s.literal(['reply']), id: callId, ok: s.boolean() }, { value: s.present(), error: WireError }),
  (reply, at) => (reply.ok ? (reply.error !== undefined ? `${at}.error is not expected in a success` : null) : reply.error === undefined ? `${at}.error is missing` : reply.value !== undefined ? `${at}.value is not expected in a failure` : null),
);
const ProgressMessage = s.object({ kind: s.literal(['progress']), id: callId, event: s.present() });
const EventMessage = s.object({ kind: s.literal(['event']), event: s.present() });

/** What a client may send, checked by the server before anything runs. */
const ToServer = s.union('kind', { call: CallMessage, cancel: CancelMessage });
/** What a server may send, checked by the client before anything is delivered. */
const ToClient = s.union('kind', { reply: ReplyMessage, progress: ProgressMessage, event: EventMessage });

export type ChannelMessage =
  | { kind: 'call'; id: number; method: string; request: unknown }
  | { kind: 'cancel'; id: number }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: WireError }
  | { kind: 'progress'; id: number; event: unknown }
  | { kind: 'event'; event: unknown };

/** What a client sends. */
export type ClientMessage = Extract<ChannelMessage, { kind: 'call' | 'cancel' }>;
/** What a server sends; `E`: the events of the contract spoken. */
export type ServerMessage<E = unknown> =
  | Extract<ChannelMessage, { kind: 'reply' }>
  | { kind: 'progress'; id: number; event: unknown }
  | { kind: 'event'; event: E };

/** The result of one call as it crosses the stream. */
export type Reply<T = unknown> = { ok: true; value: T } | { ok: false; error: WireError };

/** The value of a successful reply; a failed one is thrown as the error it carries. */
export function replyValue(reply: Reply): unknown {
  if (reply.ok) return reply.value;
  throw decodeError(reply.error);
}

export interface CallContext {
  /** aborted when the client cancels the call or goes away */
  signal: AbortSignal;
  /** streams an event belonging to this call (a job's slices, a training step) */
  progress(event: unknown, transfer?: ArrayBuffer[]): void;
  /** buffers of the reply value to move rather than copy */
  transferReply(buffers: ArrayBuffer[]): void;
}

export type Handler = (request: unknown, context: CallContext) => Promise<unknown>;

export interface DispatcherOptions {
  /** the methods served */
  handlers: Record<string, Handler>;
  /** checks a request against the contract: null when valid, else why not (default: anything goes) */
  checkRequest?: (method: string, request: unknown) => string | null;
  /** wraps every call (read-root scopes); default: runs it */
  around?: <T>(run: () => Promise<T>) => Promise<T>;
  /** where refusals and bugs are logged */
  log?: (line: string) => void;
  /** errors carry their stacks (in-process boundaries only: worker threads) */
  stacks?: boolean;
}

/**
 * What every call goes through, whatever carried it: the method looked up, the request checked
 * against the contract before anything runs, the handler run, its outcome turned into a reply
 * (errors through errors.ts). Refusals and bugs are logged; user errors are not (they are the
 * user's to read).
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  async handle(method: unknown, request: unknown, signal: AbortSignal = new AbortController().signal, context: Partial<CallContext> = {}): Promise<Reply> {
    const log = this.#options.log ?? (() => {});
    const name = typeof method === 'string' ? method : '';
    const handler = Object.prototype.hasOwnProperty.call(this.#options.handlers, name) ? this.#options.handlers[name] : undefined;
    const problem = handler ? (this.#options.checkRequest?.(name, request) ?? null) : `unknown method ${JSON.stringify(String(method)).slice(0, 80)}`;
    if (problem) {
      log(`refused invalid call: ${problem}`);
      return { ok: false, error: encodeError(new InvalidRequestError(`invalid request: ${problem}`)) };
    }
    try {
      const around = this.#options.around ?? ((run) => run());
      const full: CallContext = { signal, progress: context.progress ?? (() => {}), transferReply: context.transferReply ?? (() => {}) };
      return { ok: true, value: await around(() => handler!(request, full)) };
    } catch (err) {
      const error = encodeError(err, { stack: this.#options.stacks });
      if (!error.user && !(err instanceof ForbiddenError)) log(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return { ok: false, error };
    }
  }

  log(line: string): void {
    this.#options.log?.(line);
  }
}

/**
 * Serves calls arriving on one transport through a Dispatcher: streams their progress, honours
 * cancellation and sends one reply each. `emit` broadcasts an event on this connection, in order
 * with everything else it sends.
 */
export class ChannelServer {
  readonly #transport: Transport;
  readonly #dispatcher: Dispatcher;
  readonly #running = new Map<number, AbortController>();
  readonly #unsubscribe: () => void;
  #closed = false;

  readonly #envelope: Schema<unknown>;

  /** `envelope`: what a client may send (default: any call or cancel; a contract may name its methods) */
  constructor(transport: Transport, dispatcher: Dispatcher | DispatcherOptions, envelope: Schema<unknown> = ToServer) {
    this.#transport = transport;
    this.#envelope = envelope;
    this.#dispatcher = dispatcher instanceof Dispatcher ? dispatcher : new Dispatcher(dispatcher);
    this.#unsubscribe = transport.onMessage((message) => void this.#receive(message));
    transport.onClose?.(() => this.close());
  }

  emit(event: unknown, transfer?: ArrayBuffer[]): void {
    if (!this.#closed) this.#transport.send({ kind: 'event', event }, transfer);
  }

  /** Cancels every running call and stops listening. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const controller of this.#running.values()) controller.abort();
    this.#running.clear();
  }

  async #receive(message: unknown): Promise<void> {
    const problem = this.#envelope(message, 'message');
    if (problem) {
      this.#dispatcher.log(`refused invalid message: ${problem}`);
      const id = (message as { id?: unknown } | null)?.id;
      // a malformed call still gets its answer, so the caller does not wait forever
      if (Number.isInteger(id) && (id as number) >= 0 && (message as { kind?: unknown }).kind === 'call') {
        this.#send({ kind: 'reply', id: id as number, ok: false, error: encodeError(new InvalidRequestError(`invalid request: ${problem}`)) });
      }
      return;
    }
    const m = message as Extract<ChannelMessage, { kind: 'call' | 'cancel' }>;
    if (m.kind === 'cancel') {
      this.#running.get(m.id)?.abort();
      return;
    }
    const controller = new AbortController();
    this.#running.set(m.id, controller);
    let transfer: ArrayBuffer[] = [];
    const reply = await this.#dispatcher.handle(m.method, m.request, controller.signal, {
      progress: (event, buffers) => {
        if (!controller.signal.aborted) this.#send({ kind: 'progress', id: m.id, event }, buffers);
      },
      transferReply: (buffers) => (transfer = buffers),
    });
    this.#running.delete(m.id);
    this.#send({ kind: 'reply', id: m.id, ...reply } as ChannelMessage, reply.ok ? transfer : []);
  }

  #send(message: ChannelMessage, transfer?: ArrayBuffer[]): void {
    if (!this.#closed) this.#transport.send(message, transfer);
  }
}

export interface CallOptions {
  signal?: AbortSignal;
  /** receives the call's progress events, in order, before the call settles */
  onProgress?: (event: unknown) => void;
  /** buffers of the request to move rather than copy (the caller must not use them afterwards) */
  transfer?: ArrayBuffer[];
}

export interface ClientOptions {
  /** checks a reply against the contract: null when valid, else why not (default: anything goes) */
  checkReply?: (method: string, value: unknown) => string | null;
  /** checks a broadcast event: null when valid (default: anything goes) */
  checkEvent?: Schema<unknown>;
  /** the error a failed call rejects with (default: the error rebuilt by errors.ts) */
  callError?: (method: string, error: WireError) => Error;
  /** where dropped messages are reported */
  log?: (line: string) => void;
}

interface PendingCall {
  method: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress?: (event: unknown) => void;
  cleanup(): void;
}

/** Calls methods over one transport and receives its events: the one pending-call table. */
export class ChannelClient {
  readonly #transport: Transport;
  readonly #options: ClientOptions;
  readonly #pending = new Map<number, PendingCall>();
  readonly #listeners = new Set<(event: unknown) => void>();
  readonly #unsubscribe: () => void;
  #nextId = 1;
  #closedReason: string | null = null;

  constructor(transport: Transport, options: ClientOptions = {}) {
    this.#transport = transport;
    this.#options = options;
    this.#unsubscribe = transport.onMessage((message) => this.#receive(message));
    transport.onClose?.((reason) => this.close(reason));
  }

  call<T = unknown>(method: string, request: unknown, options: CallOptions = {}): Promise<T> {
    if (this.#closedReason !== null) return Promise.reject(new Error(this.#closedReason));
    if (options.signal?.aborted) return Promise.reject(new CancelledError());
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => this.#transport.send({ kind: 'cancel', id });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        method,
        resolve: resolve as (value: unknown) => void,
        reject,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        cleanup: () => options.signal?.removeEventListener('abort', onAbort),
      });
      try {
        this.#transport.send({ kind: 'call', id, method, request }, options.transfer);
      } catch (err) {
        this.#settle(id)?.reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  onEvent(listener: (event: unknown) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Fails every pending call with `reason` (a message, or the error itself) and refuses new ones. */
  close(reason: string | Error = 'the channel was closed'): void {
    if (this.#closedReason !== null) return;
    this.#closedReason = typeof reason === 'string' ? reason : reason.message;
    this.#unsubscribe();
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(typeof reason === 'string' ? new Error(reason) : reason);
  }

  get pendingCalls(): number {
    return this.#pending.size;
  }

  #settle(id: number): PendingCall | undefined {
    const call = this.#pending.get(id);
    if (!call) return undefined;
    this.#pending.delete(id);
    call.cleanup();
    return call;
  }

  #receive(message: unknown): void {
    const log = this.#options.log ?? ((line: string) => console.error(line));
    const problem = ToClient(message, 'message');
    if (problem) return log(`dropped a malformed message: ${problem}`);
    const m = message as Extract<ChannelMessage, { kind: 'reply' | 'progress' | 'event' }>;
    if (m.kind === 'event') {
      const invalid = this.#options.checkEvent?.(m.event, 'event');
      if (invalid) return log(`dropped an invalid event: ${invalid}`);
      for (const listener of this.#listeners) listener(m.event);
      return;
    }
    if (m.kind === 'progress') {
      this.#pending.get(m.id)?.onProgress?.(m.event);
      return;
    }
    const call = this.#settle(m.id);
    if (!call) return;
    if (!m.ok) {
      call.reject(this.#options.callError ? this.#options.callError(call.method, m.error) : decodeError(m.error));
      return;
    }
    const invalid = this.#options.checkReply?.(call.method, m.value);
    if (invalid) {
      call.reject(new ContractError(`the server sent an invalid reply: ${invalid}`));
      return;
    }
    call.resolve(m.value);
  }
}
