/**
 * The DICOMweb client's pieces that need no server: base URLs, date ranges, credentials from the
 * environment, what a network failure means, the multipart/related body STOW-RS sends, the secret
 * file's permissions, and the Encapsulated PDF (checked by dicom3tools' dciodvfy when present);
 * and how WADO-RS replies are read (node:http, not fetch), against a small local server: parts
 * handed over as they arrive, redirects, a refused transfer-syntax=*, a reply cut short, a part
 * that is not DICOM, a failing receiver.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMultipart } from '@remix-run/multipart-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DicomWebClient, encodeMultipartRelated, networkFailure, normalizeBaseUrl, parseDateRange, PacsError } from '../../../main/core/pacs/dicomweb.ts';
import { authFromEnv, FileSecretStore } from '../../../main/core/pacs/connection.ts';
import { buildEncapsulatedPdf, readEncapsulatedPdf } from '../../../main/core/io/dicom-pdf.ts';
import { openPath } from '../../../main/core/io/open.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-dicomweb-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('DICOMweb base URLs, dates and credentials', () => {
  it('treats a base URL with or without trailing slashes as one service and refuses what cannot be one', () => {
    expect(normalizeBaseUrl('http://pacs:8042/dicom-web/')).toBe('http://pacs:8042/dicom-web');
    expect(normalizeBaseUrl(' https://pacs.example/dicom-web// ')).toBe('https://pacs.example/dicom-web');
    expect(normalizeBaseUrl('http://pacs:8042/')).toBe('http://pacs:8042');
    expect(() => normalizeBaseUrl('pacs:8042/dicom-web')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => normalizeBaseUrl('not a url')).toThrow(/is not a URL/);
    expect(() => normalizeBaseUrl('http://user:secret@pacs/dicom-web')).toThrow(/not in the URL/);
    expect(() => normalizeBaseUrl('http://pacs/dicom-web?x=1')).toThrow(/no query/);
    expect(new DicomWebClient('http://pacs/dicom-web///').baseUrl).toBe('http://pacs/dicom-web');
  });

  it('reads study date ranges as DICOM ranges', () => {
    expect(parseDateRange('2026-01-01-2026-12-31')).toBe('20260101-20261231');
    expect(parseDateRange('20260101-')).toBe('20260101-');
    expect(parseDateRange('-20261231')).toBe('-20261231');
    expect(parseDateRange('20260315')).toBe('20260315');
    expect(() => parseDateRange('20261301')).toThrow(/not a date/);
    expect(() => parseDateRange('20261231-20260101')).toThrow(/ends before it starts/);
    expect(() => parseDateRange('last week')).toThrow(/--study-date expects/);
  });

  it('takes credentials from the environment only, and refuses half or double settings', () => {
    expect(authFromEnv({})).toEqual({ kind: 'none' });
    expect(authFromEnv({ SAM2UNET_PACS_USER: 'u', SAM2UNET_PACS_PASSWORD: 'p' })).toEqual({ kind: 'basic', user: 'u', password: 'p' });
    expect(authFromEnv({ SAM2UNET_PACS_TOKEN: 't' })).toEqual({ kind: 'bearer', token: 't' });
    expect(() => authFromEnv({ SAM2UNET_PACS_USER: 'u' })).toThrow(/SAM2UNET_PACS_PASSWORD is not/);
    expect(() => authFromEnv({ SAM2UNET_PACS_TOKEN: 't', SAM2UNET_PACS_USER: 'u', SAM2UNET_PACS_PASSWORD: 'p' })).toThrow(/not both/);
  });

  it('sends basic and bearer credentials in the Authorization header', async () => {
    const seen: string[] = [];
    const fake = (async (_url: string, init: RequestInit) => {
      seen.push((init.headers as Record<string, string>).Authorization ?? '');
      return new Response('[]', { status: 200, headers: { 'Content-Type': 'application/dicom+json' } });
    }) as unknown as typeof fetch;
    await new DicomWebClient('http://pacs/dicom-web', { auth: { kind: 'basic', user: 'jane', password: 'pä ss' }, fetch: fake }).searchStudies();
    await new DicomWebClient('http://pacs/dicom-web', { auth: { kind: 'bearer', token: 'tok' }, fetch: fake }).searchStudies();
    expect(seen).toEqual([`Basic ${Buffer.from('jane:pä ss').toString('base64')}`, 'Bearer tok']);
  });

  it('names what failed for DNS, refused connections, TLS and timeouts', () => {
    const failed = (code: string, message = code) => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(message), { code }) });
    const dns = networkFailure(failed('ENOTFOUND', 'getaddrinfo ENOTFOUND pacs.invalid'), 'http://pacs.invalid/dicom-web/studies?limit=2');
    expect([dns.failure, dns.message]).toEqual(['dns', 'http://pacs.invalid/dicom-web/studies: the host name "pacs.invalid" cannot be resolved (DNS: ENOTFOUND); check the address']);
    expect(networkFailure(failed('ECONNREFUSED'), 'http://127.0.0.1:9999/x').failure).toBe('refused');
    const cert = networkFailure(failed('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), 'https://pacs/dicom-web');
    expect([cert.failure, cert.message]).toEqual(['tls', 'https://pacs/dicom-web: the TLS (https) handshake with pacs:443 failed (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate)']);
    expect(networkFailure(new Error('x'), 'http://pacs/x', 30_000).failure).toBe('timeout');
    expect(networkFailure(new PacsError('auth', 'kept'), 'http://pacs/x').message).toBe('kept');
  });

  it('answers a page that is not DICOM JSON with a hint about the base URL', async () => {
    const fake = (async () => new Response('<html>login</html>', { status: 200, headers: { 'Content-Type': 'text/html' } })) as unknown as typeof fetch;
    const result = await new DicomWebClient('http://pacs/', { fetch: fake }).testConnection();
    expect(result).toMatchObject({ ok: false, failure: 'protocol' });
    expect(result.message).toMatch(/answered with text\/html, not DICOM JSON; is http:\/\/pacs the DICOMweb base URL\?/);
  });
});

describe('STOW-RS bodies, secrets and the Encapsulated PDF', () => {
  it('writes a multipart/related body the parser reads back part for part', () => {
    const files = [new Uint8Array([1, 2, 3, 13, 10, 45, 45]), new Uint8Array(1000).fill(7)];
    const body = encodeMultipartRelated(files, 'b0undary');
    const parts = [...parseMultipart(body, { boundary: 'b0undary' })];
    expect(parts.map((p) => p.headers['content-type'])).toEqual(['application/dicom', 'application/dicom']);
    expect(parts.map((p) => [...p.bytes])).toEqual(files.map((f) => [...f]));
  });

  it('keeps secrets in a file only its owner can read, and refuses one others can read', async () => {
    const file = join(tmp, 'secrets.json');
    const store = new FileSecretStore(file);
    await store.set('a', 'pw-a');
    await store.set('b', 'pw-b');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await store.get('a')).toBe('pw-a');
    await store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    chmodSync(file, 0o644);
    await expect(store.get('b')).rejects.toThrow(/can be read by other users \(mode 644\)/);
    // with a cipher (the desktop app's safeStorage) the file holds no clear text
    const sealed = new FileSecretStore(join(tmp, 'sealed.json'), { available: () => true, encrypt: (s) => Buffer.from([...Buffer.from(s)].reverse()), decrypt: (b) => Buffer.from([...b].reverse()).toString() });
    await sealed.set('c', 'clear-password');
    expect(readFileSync(join(tmp, 'sealed.json'), 'utf8')).not.toContain('clear-password');
    expect(await sealed.get('c')).toBe('clear-password');
    const noKeychain = new FileSecretStore(join(tmp, 'none.json'), { available: () => false, encrypt: () => new Uint8Array(), decrypt: () => '' });
    await expect(noKeychain.set('d', 'x')).rejects.toThrow(/no system keychain/);
    expect(existsSync(join(tmp, 'none.json'))).toBe(false);
  });

  it('wraps a PDF as Encapsulated PDF Storage in the source study, referencing its images', async () => {
    const dir = resolve(import.meta.dirname, '../../../../shared/data/phantoms/BraTS20_Training_001_flair_dicom');
    const source = Object.values((await openPath(dir)).studies[0]!.sequences)[0]!;
    const pdf = Buffer.from('%PDF-1.4\n% a tiny odd-length document\n%%EOF\n!');
    expect(pdf.length % 2).toBe(1);
    const built = buildEncapsulatedPdf({ pdf, source, alsoReferences: [{ sopClassUid: '1.2.840.10008.5.1.4.1.1.66.4', sopInstanceUid: '2.25.1' }] });
    const back = readEncapsulatedPdf(built.bytes, 'built');
    expect(Buffer.from(back.pdf).equals(pdf)).toBe(true);
    expect(back.studyUid).toBe(source.meta.studyInstanceUid);
    expect(back.sources).toHaveLength(156);
    expect(() => buildEncapsulatedPdf({ pdf: Buffer.from('<html>'), source })).toThrow(/not a PDF/);
    if (!existsSync('/usr/bin/dciodvfy')) {
      console.warn('dciodvfy check skipped: /usr/bin/dciodvfy missing (apt-get install -y dicom3tools)');
      return;
    }
    const file = join(tmp, 'report.dcm');
    writeFileSync(file, built.bytes);
    let out = '';
    try {
      out = execFileSync('/usr/bin/dciodvfy', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      out = String((err as { stderr?: string }).stderr ?? '') + String((err as { stdout?: string }).stdout ?? '');
    }
    const errors = out.split('\n').filter((l) => /^Error/.test(l));
    expect(errors, out).toEqual([]);
  });
});

describe('WADO-RS replies, read as they arrive', () => {
  const boundary = 'wado-b0undary';
  const parts = [new Uint8Array(300_000).fill(1), new Uint8Array(5).fill(2), new Uint8Array(70_000).fill(3)];
  const body = Buffer.from(encodeMultipartRelated(parts, boundary));
  const seen: { url: string; authorization?: string; accept?: string }[] = [];
  let handle: (request: IncomingMessage, response: ServerResponse) => void = () => undefined;
  const server = createServer((request, response) => {
    seen.push({ url: request.url ?? '', ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}), ...(request.headers.accept ? { accept: request.headers.accept } : {}) });
    handle(request, response);
  });
  const other = createServer((request, response) => {
    seen.push({ url: `other${request.url}`, ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
    response.writeHead(200, { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }).end(body);
  });
  const origin = (s: typeof server) => `http://127.0.0.1:${(s.address() as { port: number }).port}`;
  const client = () => new DicomWebClient(`${origin(server)}/dicom-web`, { auth: { kind: 'basic', user: 'jane', password: 'pw' } });
  const multipart = { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` };
  const collect = async (onPart?: (bytes: Uint8Array) => void | Promise<void>) => {
    const got: Uint8Array[] = [];
    const count = await client().retrieveSeries('1.2', '1.2.3', (bytes) => (got.push(bytes), onPart?.(bytes)));
    return { count, got };
  };

  beforeAll(async () => {
    for (const s of [server, other]) await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  });
  afterAll(async () => {
    for (const s of [server, other]) await new Promise((done) => s.close(done));
  });

  it('hands over each part whole, in order, from a reply sent in small pieces, asking for no transcoding', async () => {
    handle = (_request, response) => {
      response.writeHead(200, multipart);
      // 7-byte writes: boundaries and parts split anywhere
      let offset = 0;
      const next = () => {
        if (offset >= body.length) return void response.end();
        response.write(body.subarray(offset, (offset += offset < 1000 ? 7 : 65_521)));
        setImmediate(next);
      };
      next();
    };
    seen.length = 0;
    const { count, got } = await collect();
    expect(count).toBe(3);
    expect(got.map((b) => Buffer.from(b).equals(Buffer.from(parts[got.indexOf(b)]!)))).toEqual([true, true, true]);
    expect(seen[0]).toEqual({ url: '/dicom-web/studies/1.2/series/1.2.3', authorization: `Basic ${Buffer.from('jane:pw').toString('base64')}`, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
  });

  it('ignores an epilogue after the close delimiter, sent in a write of its own (as Orthanc does)', async () => {
    const closeAt = body.lastIndexOf(Buffer.from(`--${boundary}--`)) + boundary.length + 4;
    handle = (_request, response) => {
      response.writeHead(200, multipart);
      response.write(body.subarray(0, closeAt));
      setTimeout(() => response.end('\r\nan epilogue, ignored\r\n'), 20);
    };
    const { count, got } = await collect();
    expect(count).toBe(3);
    expect(got.map((b) => b.length)).toEqual(parts.map((p) => p.length));
  });

  it('pauses while the receiver is busy, and ends with the receiver\'s own error', async () => {
    // 30 parts of 100 KB at once: at most 8 waiting for the receiver, and the part one more chunk completes
    const many = Buffer.from(encodeMultipartRelated(Array.from({ length: 30 }, (_, i) => new Uint8Array(100_000).fill(i)), boundary));
    handle = (_request, response) => response.writeHead(200, multipart).end(many);
    let busy = 0;
    let most = 0;
    const slow = await collect(async () => {
      most = Math.max(most, ++busy);
      await new Promise((done) => setTimeout(done, 5));
      busy--;
    });
    expect(slow.count).toBe(30);
    expect(slow.got.map((b) => b[0])).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(most).toBeGreaterThanOrEqual(8);
    expect(most).toBeLessThanOrEqual(9);
    handle = (_request, response) => response.writeHead(200, multipart).end(body);
    const failing = collect(async (bytes) => {
      if (bytes.length === 5) throw new Error('disk full');
    });
    await expect(failing).rejects.toThrow(/^disk full$/);
  });

  it('follows redirects, sending the credentials only to the same origin', async () => {
    handle = (request, response) => {
      if (request.url!.startsWith('/dicom-web/')) return void response.writeHead(302, { Location: request.url!.replace('/dicom-web/', '/moved/') }).end();
      if (request.url!.startsWith('/moved/')) return void response.writeHead(307, { Location: `${origin(other)}${request.url}` }).end();
    };
    seen.length = 0;
    expect((await collect()).count).toBe(3);
    expect(seen.map((s) => [s.url, Boolean(s.authorization)])).toEqual([
      ['/dicom-web/studies/1.2/series/1.2.3', true],
      ['/moved/studies/1.2/series/1.2.3', true],
      ['other/moved/studies/1.2/series/1.2.3', false],
    ]);
  });

  it('asks again without transfer-syntax=* when the server refuses it', async () => {
    handle = (request, response) => {
      if (/transfer-syntax/.test(request.headers.accept ?? '')) return void response.writeHead(406, { 'Content-Type': 'text/plain' }).end('no universal transfer syntax here');
      response.writeHead(200, multipart).end(body);
    };
    seen.length = 0;
    expect((await collect()).count).toBe(3);
    expect(seen.map((s) => s.accept)).toEqual(['multipart/related; type="application/dicom"; transfer-syntax=*', 'multipart/related; type="application/dicom"']);
  });

  it('says what is wrong with a reply cut short, a part that is not DICOM, an error status', async () => {
    handle = (request, response) => {
      response.writeHead(200, multipart);
      response.write(body.subarray(0, 200_000));
      setTimeout(() => request.socket.destroy(), 20);
    };
    await expect(collect()).rejects.toMatchObject({ name: 'PacsError', failure: expect.stringMatching(/^(connection|protocol)$/) });
    handle = (_request, response) => response.writeHead(200, multipart).end(Buffer.from(encodeMultipartRelated([new Uint8Array(10)], boundary)).toString('latin1').replace('application/dicom', 'text/html'), 'latin1');
    await expect(collect()).rejects.toThrow(/a part of the reply is text\/html, not application\/dicom/);
    handle = (_request, response) => response.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>');
    await expect(collect()).rejects.toThrow(/expected multipart\/related DICOM, got text\/html/);
    handle = (_request, response) => response.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such series');
    await expect(collect()).rejects.toMatchObject({ failure: 'not-found', status: 404 });
    handle = (_request, response) => response.writeHead(401).end();
    await expect(collect()).rejects.toThrow(/401 Unauthorized: the user "jane" or the password is wrong/);
  });

  it('stops when cancelled, with a CancelledError', async () => {
    handle = (_request, response) => {
      response.writeHead(200, multipart);
      response.write(body.subarray(0, 100_000));
    };
    const controller = new AbortController();
    const running = client().retrieveSeries('1.2', '1.2.3', () => undefined, { signal: controller.signal, onBytes: () => controller.abort() });
    await expect(running).rejects.toMatchObject({ name: 'CancelledError' });
  });
});
