import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';
import type { ApiEvent } from '../../../main/core/api.ts';
import type { ServerMessage } from '../../../main/core/rpc/api-channel.ts';
import { resolveUnder } from '../../../main/core/renderer-files.ts';
import { startWebServer } from '../../../main/web/server.ts';
import type { WebServer } from '../../../main/web/server.ts';
import { fakePorts } from './fakes.ts';

/** A bare RFC 6455 client (Node 20 has no WebSocket global): masked frames out, frames in. */
class RawClient {
  readonly messages: ServerMessage[] = [];
  closed = false;
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  private constructor(readonly socket: Socket) {}

  static async open(port: number, headers: Record<string, string> = {}): Promise<{ client?: RawClient; status: number }> {
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const key = randomBytes(16).toString('base64');
    const { Host: host = `127.0.0.1:${port}`, ...others } = headers;
    const extra = Object.entries(others).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`GET /api HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
    const head = await new Promise<Buffer>((resolve) => {
      let acc = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        acc = Buffer.concat([acc, chunk]);
        const end = acc.indexOf('\r\n\r\n');
        if (end >= 0) {
          socket.off('data', onData);
          if (acc.length > end + 4) socket.unshift(acc.subarray(end + 4));
          resolve(acc.subarray(0, end));
        }
      };
      socket.on('data', onData);
    });
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head.toString())![1]);
    if (status !== 101) {
      socket.destroy();
      return { status };
    }
    const client = new RawClient(socket);
    socket.on('data', (chunk: Buffer) => client.#onData(chunk));
    socket.on('close', () => {
      client.closed = true;
      client.#wake();
    });
    return { client, status };
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  #onData(chunk: Buffer) {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 2) {
      let length = this.#buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) [length, offset] = [this.#buffer.readUInt16BE(2), 4];
      else if (length === 127) [length, offset] = [Number(this.#buffer.readBigUInt64BE(2)), 10];
      if (this.#buffer.length < offset + length) return;
      const opcode = this.#buffer[0]! & 0x0f;
      const payload = this.#buffer.subarray(offset, offset + length);
      if (opcode === 0x2) this.messages.push(decodeFrame(new Uint8Array(payload)) as ServerMessage);
      this.#buffer = this.#buffer.subarray(offset + length);
    }
    this.#wake();
  }

  sendFrame(payload: Uint8Array, opcode = 0x2, fin = true) {
    const mask = randomBytes(4);
    const header = payload.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]) : Buffer.alloc(4);
    if (payload.length >= 126) {
      header[0] = (fin ? 0x80 : 0) | opcode;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(payload.length, 2);
    }
    const masked = Buffer.from(payload).map((b, i) => b ^ mask[i & 3]!);
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  async until<T>(find: () => T | undefined, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (this.closed || Date.now() > deadline) throw new Error('no such message');
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  async call(id: number, method: string, request: unknown) {
    this.sendFrame(encodeFrame({ kind: 'call', id, method, request }));
    return this.until(() => this.messages.find((m) => m.kind === 'reply' && m.id === id) as Extract<ServerMessage, { kind: 'reply' }> | undefined);
  }
}

describe('web bridge', () => {
  let server: WebServer;
  let rendererDir: string;
  let exportDir: string;
  const log = vi.fn<(line: string) => void>();

  beforeAll(async () => {
    const base = mkdtempSync(join(tmpdir(), 'sam2unet-web-'));
    rendererDir = join(base, 'renderer');
    exportDir = join(base, 'exports');
    mkdirSync(join(rendererDir, 'assets'), { recursive: true });
    writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(base, 'secret.txt'), 'secret');
    server = await startWebServer({ port: 0, rendererDir, exportDir, ports: fakePorts(), log, noToken: true });
  });
  afterAll(async () => {
    await server.close();
    rmSync(join(rendererDir, '..'), { recursive: true, force: true });
  });

  it('serves exported reports to be shown (HTML sandboxed, PDF inline) and masks as downloads', async () => {
    mkdirSync(join(exportDir, 'case_report'), { recursive: true });
    writeFileSync(join(exportDir, 'case_report', 'report.html'), '<!doctype html><h1>r</h1>');
    writeFileSync(join(exportDir, 'case_report', 'report.pdf'), '%PDF-1.4');
    writeFileSync(join(exportDir, 'case_report', 'metrics.csv'), 'scope\n');
    writeFileSync(join(exportDir, 'case_pred.nii.gz'), 'nii');
    const get = (path: string) => fetch(new URL(path, server.url));
    const html = await get('exports/case_report/report.html');
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(html.headers.get('content-disposition')).toBe('inline; filename="report.html"');
    // a report is a document, never part of the app: no scripts, nothing fetched
    expect(html.headers.get('content-security-policy')).toMatch(/^sandbox; default-src 'none'; img-src data:/);
    const pdf = await get('exports/case_report/report.pdf');
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(pdf.headers.get('content-disposition')).toMatch(/^inline/);
    expect((await get('exports/case_report/metrics.csv')).headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const mask = await get('exports/case_pred.nii.gz');
    expect(mask.headers.get('content-type')).toBe('application/octet-stream');
    expect(mask.headers.get('content-disposition')).toBe('attachment; filename="case_pred.nii.gz"');
  });

  it('serves the renderer with a strict CSP and nothing outside it', async () => {
    const index = await fetch(server.url);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    const csp = index.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).not.toMatch(/'unsafe-eval'/);
    expect((await fetch(new URL('assets/app.js', server.url))).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(new URL('nope.js', server.url))).status).toBe(404);
    expect((await fetch(new URL('%2e%2e/secret.txt', server.url))).status).toBe(404);
    expect((await fetch(server.url, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`http://localhost:${server.port}/`)).status).toBe(200);
    expect(resolveUnder(rendererDir, '/../secret.txt')).toBeNull();
    expect(resolveUnder(rendererDir, '/a\\..\\..\\secret.txt')).toBeNull();
    expect(resolveUnder(rendererDir, '/%E0%A4%A')).toBeNull();
  });

  it('refuses other host names (DNS rebinding) and WebSocket upgrades from other origins', async () => {
    const rebound = await new Promise<string>((resolve) => {
      const socket = connect(server.port, '127.0.0.1', () => socket.write('GET /exports/x HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('close', () => resolve(text));
    });
    expect(rebound).toMatch(/^HTTP\/1\.1 421/);
    const { status } = await RawClient.open(server.port, { Origin: 'https://evil.example' });
    expect(status).toBe(403);
    expect((await RawClient.open(server.port, { Host: 'evil.example' })).status).toBe(403);
    const ok = await RawClient.open(server.port, { Origin: `http://127.0.0.1:${server.port}` });
    expect(ok.status).toBe(101);
    ok.client!.socket.destroy();
  });

  it('runs calls, streams binary events, and exports into its folder with a download URL', async () => {
    const { client } = await RawClient.open(server.port);
    const caps = await client!.call(1, 'capabilities', {});
    expect(caps).toMatchObject({ ok: true, value: { mode: 'web', dialogs: false } });
    const opened = await client!.call(2, 'openStudy', { path: '/data/tiny' });
    const studyId = (opened as { value: { studies: { id: string }[] } }).value.studies[0]!.id;
    const volume = await client!.call(3, 'getVolume', { studyId, sequence: 'flair' });
    expect((volume as { value: { data: Int16Array } }).value.data).toBeInstanceOf(Int16Array);
    await client!.call(4, 'segment', { studyId });
    const done = await client!.until(() => client!.messages.find((m) => m.kind === 'event' && m.event.type === 'done'));
    expect(done).toBeDefined();
    const slice = client!.messages.find((m) => m.kind === 'event' && m.event.type === 'sliceResult') as Extract<ServerMessage, { kind: 'event' }>;
    expect((slice.event as { mask: Uint8Array }).mask).toBeInstanceOf(Uint8Array);
    // a path from the browser is ignored: web exports always land in the export folder
    const exported = await client!.call(5, 'exportMasks', { studyId, format: 'nifti', source: 'prediction', path: '/etc/evil.nii.gz' });
    expect(exported).toMatchObject({ ok: true, value: { files: [join(exportDir, 'tiny_pred.nii.gz')], downloadUrl: '/exports/tiny_pred.nii.gz', urls: ['/exports/tiny_pred.nii.gz'] } });
    const download = await fetch(new URL('exports/tiny_pred.nii.gz', server.url));
    expect(download.status).toBe(200);
    expect(download.headers.get('content-disposition')).toContain('attachment');
    expect(await download.text()).toBe('fake');
    // openExport is the desktop app's: in the browser the links open the files
    expect(await client!.call(6, 'openExport', { file: join(exportDir, 'tiny_pred.nii.gz') })).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/open the exported file through its link/) } });
    client!.socket.destroy();
  });

  it('answers invalid calls with an error reply and logs them; drops undecodable frames', async () => {
    const { client } = await RawClient.open(server.port);
    log.mockClear();
    const bad = await client!.call(7, 'openStudy', { path: ['x'] });
    expect(bad).toMatchObject({ ok: false, error: { name: 'InvalidRequest' } });
    const noDialog = await client!.call(10, 'chooseStudyPath', {});
    expect(noDialog).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/no file dialog in browser mode/) } });
    const unknown = await client!.call(8, 'format', {});
    expect(unknown).toMatchObject({ ok: false, error: { name: 'InvalidRequest' } });
    client!.sendFrame(new Uint8Array([1, 2, 3]));
    client!.sendFrame(new TextEncoder().encode('{"kind":"call"}'), 0x1);
    // the connection survives: a fragmented valid call still works
    const frame = encodeFrame({ kind: 'call', id: 9, method: 'listModels', request: {} });
    client!.sendFrame(frame.subarray(0, 5), 0x2, false);
    client!.sendFrame(frame.subarray(5), 0x0, true);
    const models = await client!.until(() => client!.messages.find((m) => m.kind === 'reply' && m.id === 9));
    expect(models).toMatchObject({ ok: true, value: [] });
    expect(log.mock.calls.map(([l]) => l)).toEqual([
      expect.stringMatching(/^refused invalid call: openStudy.path must be a string/),
      expect.stringMatching(/^refused invalid message: message.method must be one of/),
      expect.stringMatching(/^refused malformed message/),
      expect.stringMatching(/^refused malformed message: text frames/),
    ]);
    client!.socket.destroy();
  });

  it('closes connections that send unmasked frames', async () => {
    const { client } = await RawClient.open(server.port);
    client!.socket.write(Buffer.from([0x82, 0x01, 0x00]));
    await client!.until(() => (client!.closed ? true : undefined));
    expect(client!.closed).toBe(true);
  });

  it('says when the renderer is not built', async () => {
    const bare = await startWebServer({ port: 0, rendererDir: join(rendererDir, 'missing'), exportDir, ports: fakePorts(), log: () => {}, noToken: true });
    const response = await fetch(bare.url);
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/npm run build:renderer/);
    await bare.close();
  });
});

describe('sam2unet serve with the real services (phantom 001, bundled model)', () => {
  const phantom = resolve(import.meta.dirname, '../../../../shared/data/phantoms/BraTS20_Training_001');
  let server: WebServer;
  let base: string;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sam2unet-serve-'));
    mkdirSync(join(base, 'renderer'));
    writeFileSync(join(base, 'renderer', 'index.html'), '<!doctype html><title>t</title>');
    server = await startWebServer({ port: 0, rendererDir: join(base, 'renderer'), exportDir: join(base, 'exports'), dataDir: join(base, 'data'), log: () => {}, noToken: true });
  });
  afterAll(async () => {
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('opens a study, streams a segmentation, cancels it half-way, streams it again in full, and exports', async () => {
    const { client } = await RawClient.open(server.port);
    const events = () => client!.messages.filter((m): m is Extract<ServerMessage, { kind: 'event' }> => m.kind === 'event').map((m) => m.event);
    const opened = await client!.call(1, 'openStudy', { path: phantom });
    expect(opened.ok, JSON.stringify(opened)).toBe(true);
    const study = (opened as { value: { studies: { id: string; dims: number[] }[] } }).value.studies[0]!;
    const nz = study.dims[2]!;

    const first = (await client!.call(2, 'segment', { studyId: study.id })) as { value: { jobId: string } };
    const firstSlices = () => events().filter((e) => e.type === 'sliceResult' && e.jobId === first.value.jobId);
    await client!.until(() => (firstSlices().length >= nz / 2 ? true : undefined), 120_000);
    expect(await client!.call(3, 'cancel', { jobId: first.value.jobId })).toMatchObject({ ok: true, value: { cancelled: true } });
    await client!.until(() => events().find((e) => e.type === 'cancelled' && e.jobId === first.value.jobId), 60_000);
    const cancelledAt = firstSlices().length;
    expect(cancelledAt).toBeLessThan(nz);
    expect(events().some((e) => e.type === 'done' && e.jobId === first.value.jobId)).toBe(false);
    // a cancelled run leaves nothing to export as if it were finished
    expect(await client!.call(4, 'exportMasks', { studyId: study.id, format: 'nifti', source: 'prediction' })).toMatchObject({ ok: false, error: { user: true } });

    const second = (await client!.call(5, 'segment', { studyId: study.id })) as { value: { jobId: string } };
    const done = (await client!.until(() => events().find((e) => (e.type === 'done' || e.type === 'failed') && e.jobId === second.value.jobId), 240_000)) as ApiEvent;
    expect(done.type, JSON.stringify(done)).toBe('done');
    const indexes = events().filter((e) => e.type === 'sliceResult' && e.jobId === second.value.jobId).map((e) => (e as { index: number }).index);
    // every slice streamed once in order, then the slices 3D post-processing changed, sent again
    expect(indexes.slice(0, nz)).toEqual([...Array(nz).keys()]);
    expect(new Set(indexes.slice(nz)).size).toBe(indexes.length - nz);
    expect((done as Extract<ApiEvent, { type: 'done' }>).dice?.WT).toBeGreaterThan(0.8);

    const exported = (await client!.call(6, 'exportMasks', { studyId: study.id, format: 'nifti', source: 'prediction' })) as { ok: boolean; value: { files: string[]; downloadUrl: string } };
    expect(exported.ok).toBe(true);
    const download = await fetch(new URL(exported.value.downloadUrl, server.url));
    expect(download.status).toBe(200);
    const { readNifti } = await import('../../../main/core/io/nifti.ts');
    const written = await readNifti(exported.value.files[0]!);
    const labels = (await client!.call(7, 'getLabels', { studyId: study.id, source: 'prediction' })) as { value: { data: Uint8Array } };
    expect(Buffer.from(written.volumes[0]!.data as Uint8Array).equals(Buffer.from(labels.value.data))).toBe(true);
    client!.socket.destroy();
    console.log(`  cancelled after ${cancelledAt} of ${nz} slices; the second run streamed all ${nz}; WT Dice ${(done as { dice: { WT: number } }).dice.WT.toFixed(3)}`);
  }, 400_000);
});

describe('serve beyond loopback needs the token', () => {
  let server: WebServer;
  let base: string;
  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sam2unet-token-'));
    mkdirSync(join(base, 'renderer'));
    writeFileSync(join(base, 'renderer', 'index.html'), '<!doctype html><title>t</title>');
    server = await startWebServer({ port: 0, host: '0.0.0.0', rendererDir: join(base, 'renderer'), exportDir: join(base, 'exports'), ports: fakePorts(), log: () => {} });
  });
  afterAll(async () => {
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('generates a token, refuses pages and sockets without it, and moves it into a cookie', async () => {
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(server.url).toContain(`?token=${server.token}`);
    const origin = `http://127.0.0.1:${server.port}`;
    expect((await fetch(`${origin}/`)).status).toBe(401);
    expect((await fetch(`${origin}/?token=wrong-token-wrong-token-wrong-to`)).status).toBe(401);
    const withToken = await fetch(`${origin}/?token=${server.token}&open=%2Fdata`, { redirect: 'manual' });
    expect(withToken.status).toBe(303);
    expect(withToken.headers.get('location')).toBe('/?open=%2Fdata');
    const cookie = withToken.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await fetch(`${origin}/`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
    expect((await RawClient.open(server.port)).status).toBe(403);
    const ok = await RawClient.open(server.port, { Cookie: cookie.split(';')[0]! });
    expect(ok.status).toBe(101);
    expect(await ok.client!.call(1, 'capabilities', {})).toMatchObject({ ok: true });
    ok.client!.socket.destroy();
  });
});
