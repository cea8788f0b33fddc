/**
 * A client that only answers pings for a while (the app while a training run streams its events)
 * stays connected: the partial-message timeout counts bytes that begin a message, not the bytes
 * that complete one (a regression found by the fine-tuning loop of issue 15).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { encodeFrame } from '../../../main/core/rpc/frame.ts';
import { startWebServer } from '../../../main/web/server.ts';
import { fakePorts } from './fakes.ts';

const base = mkdtempSync(join(tmpdir(), 'ws-idle-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('an idle WebSocket client', () => {
  it('is kept for many heartbeats after its last call', async () => {
    const lines: string[] = [];
    const server = await startWebServer({ port: 0, rendererDir: base, exportDir: join(base, 'exports'), ports: fakePorts(), noToken: true, log: (l) => lines.push(l), websocket: { heartbeatMs: 200, partialMessageMs: 300 } });
    try {
      const ws = new WebSocket(server.url.replace(/^http/, 'ws').replace(/\/?(\?.*)?$/, '/api'));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      let closed = false;
      ws.on('close', () => (closed = true));
      const replied = new Promise((resolve) => ws.once('message', resolve));
      ws.send(encodeFrame({ kind: 'call', id: 1, method: 'capabilities', request: {} }));
      await replied;
      // ten heartbeats of silence but for pongs (ws answers pings by itself)
      await new Promise((r) => setTimeout(r, 2000));
      expect(lines.filter((l) => l.includes('dropped'))).toEqual([]);
      expect(closed).toBe(false);
      ws.close();
    } finally {
      await server.close();
    }
  });
});
