/**
 * Finding 9 of issue 14: a report export wrote through a symlinked folder inside the export
 * folder, and `GET /exports/leak.txt` (a symlink) served a file from outside. Real symlinks,
 * the real server (fake engine ports behind it).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';
import type { ServerMessage } from '../../../main/core/rpc/api-channel.ts';
import { startWebServer, type WebServer } from '../../../main/web/server.ts';
import { fakePorts } from '../app/fakes.ts';

const base = mkdtempSync(join(tmpdir(), 'exports-symlinks-'));
const exportDir = join(base, 'exports');
const outside = join(base, 'outside');
mkdirSync(exportDir);
mkdirSync(outside);
writeFileSync(join(outside, 'secret.txt'), 'secret');
let server: WebServer;
let ws: WebSocket;
const messages: ServerMessage[] = [];
let next = 1;
const call = (method: string, request: unknown) =>
  new Promise<ServerMessage>((resolve) => {
    const id = next++;
    const onMessage = (data: Buffer) => {
      const m = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as ServerMessage;
      if (m.kind === 'reply' && m.id === id) {
        ws.off('message', onMessage);
        resolve(m);
      }
    };
    ws.on('message', onMessage);
    ws.send(encodeFrame({ kind: 'call', id, method, request }));
  });

beforeAll(async () => {
  server = await startWebServer({ port: 0, rendererDir: join(base, 'renderer'), exportDir, ports: fakePorts(), log: () => {} });
  const cookie = (await fetch(server.url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
  ws = new WebSocket(`ws://127.0.0.1:${server.port}/api`, { headers: { cookie } });
  ws.on('message', (data: Buffer) => messages.push(decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as ServerMessage));
  await new Promise((r) => ws.once('open', r));
});
afterAll(async () => {
  ws.terminate();
  await server.close();
  rmSync(base, { recursive: true, force: true });
});

describe('exports never write through or serve a symlink', () => {
  it('GET /exports/<a symlink> is not served; a regular export file is', async () => {
    symlinkSync(join(outside, 'secret.txt'), join(exportDir, 'leak.txt'));
    mkdirSync(join(exportDir, 'sub'));
    symlinkSync(outside, join(exportDir, 'sub', 'linked'));
    writeFileSync(join(exportDir, 'own.txt'), 'own');
    const get = (path: string) => fetch(new URL(path, server.origin), { headers: { cookie: `sam2unet_token=${server.token}` } });
    expect((await get('/exports/own.txt')).status).toBe(200);
    const leak = await get('/exports/leak.txt');
    expect(leak.status).toBe(404);
    expect(await leak.text()).not.toContain('secret');
    expect((await get('/exports/sub/linked/secret.txt')).status).toBe(404);
  });

  it('an export whose destination is a symlink inside the export folder is refused and writes nothing outside', async () => {
    const opened = await call('openStudy', { path: '/data/tiny' });
    const studyId = (opened as { value: { studies: { id: string }[] } }).value.studies[0]!.id;
    await call('segment', { studyId });
    await expect.poll(() => messages.some((m) => m.kind === 'event' && m.event.type === 'done'), { timeout: 20_000 }).toBe(true);
    // the control: an export lands in the folder
    const first = await call('exportMasks', { studyId, format: 'nifti', source: 'prediction' });
    expect(first).toMatchObject({ ok: true });
    const written = (first as { value: { files: string[] } }).value.files[0]!;
    const name = written.slice(exportDir.length + 1);
    // a link planted under the same name, pointing outside
    unlinkSync(written);
    symlinkSync(join(outside, 'planted.nii.gz'), written);
    const refused = await call('exportMasks', { studyId, format: 'nifti', source: 'prediction' });
    expect(refused).toMatchObject({ ok: false, error: { user: true } });
    expect((refused as { error: { message: string } }).error.message).toBe(`refusing to write ${written}: ${written} is a symbolic link inside the export folder`);
    expect(existsSync(join(outside, 'planted.nii.gz'))).toBe(false);
    expect(readdirSync(outside)).toEqual(['secret.txt']);
    expect(name).toMatch(/_pred\.nii\.gz$/);
  }, 30_000);
});
