/**
 * The web bridge's WebSocket side, on the `ws` library (RFC 6455 framing, masking, UTF-8 and
 * close handling are its job, not ours). What this module adds is the server's self-defence:
 * - message limits that count the whole message and its fragments (a flood of empty
 *   continuation frames is refused, not accumulated);
 * - a connection cap, refused with a clear HTTP answer;
 * - a ping/pong heartbeat that drops peers gone without a close frame (a dead peer is gone
 *   within two heartbeats, under a minute), and a limit on how long a started message may take;
 * - backpressure: a client that stops reading while replies pile up is dropped.
 * No extensions (no permessage-deflate: inflation would be another size to police).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

export interface WebSocketConnection {
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  readonly closed: boolean;
}

export interface WebSocketHandlers {
  onMessage(data: Uint8Array, isText: boolean): void;
  onClose?(): void;
}

export interface WebSocketLimits {
  /** the largest message, all its fragments together */
  maxMessageBytes: number;
  /** the most frames one message may be split into */
  maxFragments: number;
  /** open connections at once; more are refused with 503 */
  maxConnections: number;
  /** a ping every this often; a peer that has not answered the previous one is dropped */
  heartbeatMs: number;
  /** a message (or a frame) begun must be complete within this */
  partialMessageMs: number;
  /** replies queued for a client that does not read, beyond which it is dropped */
  maxBufferedBytes: number;
}

export const DEFAULT_WEBSOCKET_LIMITS: WebSocketLimits = {
  maxMessageBytes: 4 * 1024 * 1024,
  maxFragments: 1024,
  maxConnections: 256,
  heartbeatMs: 20_000,
  partialMessageMs: 30_000,
  // a few whole volumes (a 240×240×155 float32 volume is 36 MB)
  maxBufferedBytes: 512 * 1024 * 1024,
};

interface Tracked {
  ws: WebSocket;
  alive: boolean;
  /** when raw bytes arrived that have not yet made a whole message, ping or pong */
  pendingSince?: number;
}

export class WebSocketHub {
  readonly limits: WebSocketLimits;
  readonly #server: WebSocketServer;
  readonly #clients = new Set<Tracked>();
  readonly #timer: NodeJS.Timeout;
  readonly #log: (line: string) => void;
  #handshakes = 0;

  constructor(limits: Partial<WebSocketLimits> = {}, log: (line: string) => void = () => {}) {
    this.limits = { ...DEFAULT_WEBSOCKET_LIMITS, ...limits };
    this.#log = log;
    this.#server = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.maxMessageBytes,
      maxFragments: this.limits.maxFragments,
      perMessageDeflate: false,
      clientTracking: false,
    } as ConstructorParameters<typeof WebSocketServer>[0]);
    // the heartbeat also checks partial messages, so it ticks at least as often as they expire
    const tick = Math.min(this.limits.heartbeatMs, Math.max(100, this.limits.partialMessageMs / 2));
    let sincePing = 0;
    this.#timer = setInterval(() => {
      sincePing += tick;
      const ping = sincePing >= this.limits.heartbeatMs;
      if (ping) sincePing = 0;
      this.#sweep(ping);
    }, tick);
    this.#timer.unref();
  }

  /** open connections */
  get size(): number {
    return this.#clients.size;
  }

  #sweep(ping: boolean): void {
    const now = Date.now();
    for (const client of this.#clients) {
      if (client.pendingSince !== undefined && now - client.pendingSince > this.limits.partialMessageMs) {
        this.#log(`dropped a WebSocket client: a message begun ${Math.round((now - client.pendingSince) / 1000)} s ago is not complete`);
        client.ws.terminate();
        continue;
      }
      if (!ping) continue;
      if (!client.alive) {
        this.#log('dropped a WebSocket client that stopped answering pings');
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }

  /**
   * Completes the handshake of an 'upgrade' request (which the caller has authorised), or
   * refuses it: 503 beyond the connection cap, 400 for a malformed upgrade (ws answers those).
   */
  accept(request: IncomingMessage, socket: Duplex, head: Buffer, handlers: WebSocketHandlers, onOpen: (connection: WebSocketConnection) => void): void {
    if (this.#clients.size + this.#handshakes >= this.limits.maxConnections) {
      this.#log(`refused a WebSocket connection: ${this.limits.maxConnections} are open already`);
      const body = `too many connections: this server accepts ${this.limits.maxConnections} at once; close another tab or window of the workstation\n`;
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 5\r\n\r\n${body}`);
      return;
    }
    this.#handshakes++;
    let settled = false;
    const settle = () => {
      if (!settled) this.#handshakes--;
      settled = true;
    };
    socket.once('close', settle);
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      settle();
      const client: Tracked = { ws, alive: true };
      this.#clients.add(client);
      // raw bytes in: a frame or message has begun; it ends with a message, a ping or a pong.
      // Ahead of ws's own listener: after it, the bytes that complete a message would mark a new
      // one begun, and a client quiet but for its pongs was dropped as "a message begun 30 s ago".
      socket.prependListener('data', () => {
        client.pendingSince ??= Date.now();
      });
      const done = () => {
        client.alive = true;
        client.pendingSince = undefined;
      };
      ws.on('pong', done);
      ws.on('ping', done);
      ws.on('message', (data: RawData, isBinary: boolean) => {
        done();
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        handlers.onMessage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), !isBinary);
      });
      ws.on('error', (err) => {
        // ws closes with the right code (1009 too big, 1008 too many fragments, 1002 protocol)
        this.#log(`closed a WebSocket client: ${err.message}`);
      });
      ws.on('close', () => {
        this.#clients.delete(client);
        handlers.onClose?.();
      });
      const connection: WebSocketConnection = {
        send: (data) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          if (ws.bufferedAmount > this.limits.maxBufferedBytes) {
            this.#log(`dropped a WebSocket client that is not reading (${Math.round(ws.bufferedAmount / 2 ** 20)} MB of replies waiting)`);
            ws.terminate();
            return;
          }
          ws.send(data, { binary: typeof data !== 'string' });
        },
        close: (code = 1000, reason = '') => ws.close(code, reason),
        get closed() {
          return ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING;
        },
      };
      onOpen(connection);
    });
  }

  /** Ends every connection and the heartbeat. */
  close(): void {
    clearInterval(this.#timer);
    for (const client of this.#clients) client.ws.terminate();
    this.#clients.clear();
    this.#server.close();
  }
}
