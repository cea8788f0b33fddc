/**
 * A minimal RFC 6455 WebSocket server side: the handshake, masked client frames (text, binary,
 * continuation, ping, pong, close) and unmasked server frames. Enough for the web bridge; no
 * extensions (no permessage-deflate), no subprotocols.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface WebSocketConnection {
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  readonly closed: boolean;
}

export interface WebSocketHandlers {
  onMessage(data: Uint8Array, isText: boolean): void;
  onClose?(): void;
}

/**
 * Completes the handshake on an 'upgrade' request. Returns null (and answers 400) when the
 * request is not a valid WebSocket upgrade.
 */
export function acceptWebSocket(
  request: IncomingMessage,
  socket: Duplex,
  handlers: WebSocketHandlers,
  options: { maxMessageBytes: number },
): WebSocketConnection | null {
  const key = request.headers['sec-websocket-key'];
  const version = request.headers['sec-websocket-version'];
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key) || version !== '13' || request.headers.upgrade?.toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return null;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, '', ''].join('\r\n'));

  let closed = false;
  let buffered: Buffer = Buffer.alloc(0);
  let fragments: Buffer[] = [];
  let fragmentBytes = 0;
  let fragmentIsText = false;

  const writeFrame = (opcode: number, payload: Uint8Array) => {
    const length = payload.byteLength;
    let header: Buffer;
    if (length < 126) {
      header = Buffer.from([0x80 | opcode, length]);
    } else if (length < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 126;
      header.writeUInt16BE(length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt(length), 2);
    }
    socket.write(header);
    if (length) socket.write(payload);
  };

  const connection: WebSocketConnection = {
    send(data) {
      if (closed) return;
      if (typeof data === 'string') writeFrame(0x1, Buffer.from(data, 'utf8'));
      else writeFrame(0x2, data);
    },
    close(code = 1000, reason = '') {
      if (closed) return;
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code, 0);
      body.write(reason, 2);
      writeFrame(0x8, body);
      finish();
      socket.end();
    },
    get closed() {
      return closed;
    },
  };

  const finish = () => {
    if (closed) return;
    closed = true;
    handlers.onClose?.();
  };

  const fail = (code: number, reason: string) => {
    connection.close(code, reason);
    socket.destroy();
  };

  const parse = () => {
    while (!closed) {
      if (buffered.length < 2) return;
      const first = buffered[0]!;
      const second = buffered[1]!;
      const fin = (first & 0x80) !== 0;
      const opcode = first & 0x0f;
      if (first & 0x70) return fail(1002, 'reserved bits set');
      if (!(second & 0x80)) return fail(1002, 'client frames must be masked');
      let length = second & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        const big = buffered.readBigUInt64BE(2);
        if (big > BigInt(options.maxMessageBytes)) return fail(1009, 'message too big');
        length = Number(big);
        offset = 10;
      }
      if (length > options.maxMessageBytes) return fail(1009, 'message too big');
      if (buffered.length < offset + 4 + length) return;
      const mask = buffered.subarray(offset, offset + 4);
      const payload = Buffer.from(buffered.subarray(offset + 4, offset + 4 + length));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      buffered = buffered.subarray(offset + 4 + length);

      if (opcode >= 0x8) {
        if (!fin || length > 125) return fail(1002, 'bad control frame');
        if (opcode === 0x8) {
          connection.close(1000);
          return;
        }
        if (opcode === 0x9) writeFrame(0xa, payload);
        continue; // pong: nothing to do
      }
      if (opcode === 0x0) {
        if (fragments.length === 0) return fail(1002, 'continuation without a start');
      } else if (opcode === 0x1 || opcode === 0x2) {
        if (fragments.length > 0) return fail(1002, 'new message inside a fragmented one');
        fragmentIsText = opcode === 0x1;
      } else {
        return fail(1002, `unknown opcode ${opcode}`);
      }
      fragments.push(payload);
      fragmentBytes += payload.length;
      if (fragmentBytes > options.maxMessageBytes) return fail(1009, 'message too big');
      if (fin) {
        const message = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
        const isText = fragmentIsText;
        fragments = [];
        fragmentBytes = 0;
        handlers.onMessage(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), isText);
      }
    }
  };

  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    try {
      parse();
    } catch {
      fail(1011, 'internal error');
    }
  });
  socket.on('close', finish);
  socket.on('error', finish);
  return connection;
}
