/**
 * Findings 3, 5 and 7 of issue 14: one client's flood of empty continuation frames grew the
 * server without limit; dead connections were kept (CLOSE-WAIT) and their number was not
 * capped; on loopback no token was needed. The server under test is the real one (ws library),
 * with fake ports behind it; clients are raw sockets (to send what a browser never would) and
 * ws clients.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';
import type { ServerMessage } from '../../../main/core/rpc/api-channel.ts';
import { startWebServer, type WebServer } from '../../../main/web/server.ts';
import { fakePorts } from '../app/fakes.ts';

const base = mkdtempSync(join(tmpdir(), 'ws-hardening-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Opens a raw upgraded socket; resolves with the status line's code and the socket. */
async function rawUpgrade(port: number, path = '/api', headers: Record<string, string> = {}): Promise<{ status: number; socket: Socket; head: string }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const extra = Object.entries({ Host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`GET ${path} HTTP/1.1\r\n${extra}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const head = await new Promise<string>((resolve) => {
    let acc = '';
    const onData = (chunk: Buffer) => {
      acc += chunk.toString('latin1');
      if (acc.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(acc);
      }
    };
    socket.on('data', onData);
    socket.on('close', () => resolve(acc));
  });
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), socket, head };
}

/** A masked frame with an empty payload (what the flood is made of). */
const emptyFrame = (fin: boolean, opcode: number) => Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80, 1, 2, 3, 4]);

async function wsClient(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; call: (method: string, request: unknown) => Promise<ServerMessage> }> {
  const ws = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  let next = 1;
  const waiting = new Map<number, (m: ServerMessage) => void>();
  ws.on('message', (data: Buffer) => {
    const message = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as ServerMessage;
    if (message.kind === 'reply') waiting.get(message.id)?.(message);
  });
  return {
    ws,
    call: (method, request) =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        ws.send(encodeFrame({ kind: 'call', id, method, request }));
      }),
  };
}

describe('a token always, on loopback too', () => {
  let server: WebServer;
  beforeAll(async () => {
    server = await startWebServer({ port: 0, rendererDir: join(base, 'renderer'), exportDir: join(base, 'exports-token'), ports: fakePorts(), log: () => {} });
  });
  afterAll(() => server.close());

  it('a loopback server generates a token, carries it in its URL and refuses pages and sockets without it', async () => {
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(server.url).toBe(`${server.origin}/?token=${server.token}`);
    expect((await fetch(`${server.origin}/`)).status).toBe(401);
    expect((await rawUpgrade(server.port)).status).toBe(403);
    const moved = await fetch(server.url, { redirect: 'manual' });
    expect(moved.status).toBe(303);
    const cookie = moved.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    const client = await wsClient(`ws://127.0.0.1:${server.port}/api`, { cookie: cookie.split(';')[0]! });
    expect((await client.call('capabilities', {})).kind).toBe('reply');
    client.ws.close();
  });

  it('the loopback Host check still holds with a token (DNS rebinding)', async () => {
    const { get } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      get({ host: '127.0.0.1', port: server.port, path: `/?token=${server.token}`, headers: { Host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(status).toBe(421);
  });

  it('noToken is refused beyond loopback, and announced loudly on loopback', async () => {
    await expect(startWebServer({ port: 0, host: '0.0.0.0', rendererDir: base, exportDir: join(base, 'e2'), ports: fakePorts(), log: () => {}, noToken: true })).rejects.toThrow(/only for tests on loopback/);
    const lines: string[] = [];
    const open = await startWebServer({ port: 0, rendererDir: base, exportDir: join(base, 'e3'), ports: fakePorts(), log: (l) => lines.push(l), noToken: true });
    try {
      expect(open.token).toBeUndefined();
      expect(lines.join('\n')).toMatch(/WARNING: serving WITHOUT A TOKEN/);
    } finally {
      await open.close();
    }
  });
});

describe('a server that cannot be exhausted', () => {
  let server: WebServer;
  const logged: string[] = [];
  beforeAll(async () => {
    server = await startWebServer({
      port: 0,
      rendererDir: join(base, 'renderer'),
      exportDir: join(base, 'exports'),
      ports: fakePorts(),
      log: (line) => logged.push(line),
      noToken: true,
      websocket: { maxConnections: 220, heartbeatMs: 300, partialMessageMs: 600 },
    });
  });
  afterAll(() => server.close());
  const url = () => `ws://127.0.0.1:${server.port}/api`;

  it('200 concurrent connections and a fragment flood: a second client is answered within 1 s, RSS grows < 200 MB', async () => {
    // the heartbeat must not take these for dead: ws clients answer pings
    const clients = await Promise.all(Array.from({ length: 190 }, () => wsClient(url())));
    const flooders: Socket[] = [];
    for (let i = 0; i < 10; i++) {
      const { status, socket } = await rawUpgrade(server.port);
      expect(status).toBe(101);
      socket.on('error', () => {});
      flooders.push(socket);
    }
    global.gc?.();
    const before = process.memoryUsage().rss;
    // each flooder: one non-final frame, then a million empty continuation frames (6 MB on the wire)
    const burst = Buffer.concat(Array.from({ length: 100_000 }, () => emptyFrame(false, 0x0)));
    const floods = flooders.map(async (socket) => {
      socket.write(emptyFrame(false, 0x2));
      for (let i = 0; i < 10 && !socket.destroyed; i++) {
        if (!socket.write(burst)) await new Promise((r) => setTimeout(r, 5));
      }
    });
    const second = await wsClient(url());
    const started = performance.now();
    const reply = await second.call('capabilities', {});
    const elapsed = performance.now() - started;
    await Promise.all(floods);
    await new Promise((r) => setTimeout(r, 300));
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    console.log(`capabilities answered in ${elapsed.toFixed(0)} ms under ${clients.length + flooders.length + 1} connections and a 10 × 1M-frame flood; RSS grew ${grown.toFixed(0)} MB`);
    expect(reply).toMatchObject({ kind: 'reply', ok: true });
    expect(elapsed).toBeLessThan(1000);
    expect(grown).toBeLessThan(200);
    // the flooders were dropped (too many fragments), the others kept
    for (const socket of flooders) await expect.poll(() => socket.destroyed || socket.readableEnded, { timeout: 5000 }).toBe(true);
    expect(logged.join('\n')).toMatch(/Too many message fragments/);
    expect(clients.every((c) => c.ws.readyState === WebSocket.OPEN)).toBe(true);
    for (const c of [...clients, second]) c.ws.terminate();
  }, 60_000);

  it('beyond the cap a connection is refused with a clear 503', async () => {
    const clients = await Promise.all(Array.from({ length: 220 }, () => wsClient(url())));
    const refused = await rawUpgrade(server.port);
    expect(refused.status).toBe(503);
    expect(refused.head).toMatch(/too many connections: this server accepts 220 at once/);
    for (const c of clients) c.ws.terminate();
    // once they are gone, a new one is accepted again
    await expect.poll(async () => (await rawUpgrade(server.port)).status, { timeout: 5000 }).toBe(101);
  }, 30_000);

  it('a peer gone without a close frame (no pong) is dropped within two heartbeats', async () => {
    const { status, socket } = await rawUpgrade(server.port);
    expect(status).toBe(101);
    // never answers the pings: a machine that dropped off the network
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const after = Date.now() - started;
    expect(after).toBeLessThan(3 * 300 + 200);
    expect(logged.join('\n')).toMatch(/stopped answering pings/);
  });

  it('a message begun and never finished is dropped after the partial-message limit', async () => {
    const { socket } = await rawUpgrade(server.port);
    // a frame header announcing 1000 bytes, then nothing; the pings it gets are answered by a pong frame
    socket.write(Buffer.from([0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4, 0, 0, 0]));
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(logged.join('\n')).toMatch(/dropped a WebSocket client/);
  });

  it('a message over the size limit is refused with 1009 (counting all its fragments)', async () => {
    const { socket } = await rawUpgrade(server.port);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    // 3 fragments of 2 MB each: none alone is over 4 MB, the message is
    const fragment = (fin: boolean, opcode: number) => {
      const header = Buffer.alloc(14);
      header[0] = (fin ? 0x80 : 0) | opcode;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(2 << 20), 2);
      header.set([1, 2, 3, 4], 10);
      return Buffer.concat([header, Buffer.alloc(2 << 20)]);
    };
    socket.write(Buffer.concat([fragment(false, 0x2), fragment(false, 0x0), fragment(true, 0x0)]));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const all = Buffer.concat(chunks);
    // the close frame: opcode 8, code 1009
    expect(all[0]).toBe(0x88);
    expect(all.readUInt16BE(2)).toBe(1009);
  });
});
