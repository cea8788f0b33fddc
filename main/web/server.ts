/**
 * Browser mode: the api.ts services over one WebSocket (/api, binary frames from api.ts) plus
 * the built renderer served statically, and the export folder for downloads. Listens on
 * localhost only by default: the services read any path the user types, so they must not be
 * reachable from other machines or, through the Origin check, from other web pages.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Ports } from '../core/api-ports.ts';
import { WorkstationService } from '../core/api-service.ts';
import { apiDispatcher, serveApi } from '../core/rpc/api-channel.ts';
import type { Transport } from '../core/rpc/channel.ts';
import { decodeFrame, encodeFrame } from '../core/rpc/frame.ts';
import { UserError, errorMessage } from '../core/errors.ts';
import { DEFAULT_MODEL_DIR } from '../core/jobs/bundled.ts';
import { ReadRoots } from '../core/read-roots.ts';
import { symlinkBelow, withReadScope } from '../core/util/fs.ts';
import { SettingsStore } from '../core/settings.ts';
import { FileSecretStore } from '../core/pacs/connection.ts';
import { WebSocketHub, type WebSocketConnection, type WebSocketLimits } from './websocket.ts';
import { readStatic, rendererBuilt, rendererCsp, resolveUnder } from '../core/renderer-files.ts';

export interface WebServerOptions {
  port: number;
  host?: string;
  rendererDir: string;
  /** every export is written here (browser mode has no save dialog) */
  exportDir: string;
  modelsDir?: string;
  /** settings.json and training runs live here; absent = settings in memory, no training */
  dataDir?: string;
  /** when given, only paths under these folders may be read */
  roots?: string[];
  /**
   * required from every client; generated when not given. Always, on loopback too: any local
   * process or user could otherwise drive the API and read what the server's user can.
   */
  token?: string;
  /**
   * no token at all: for tests on loopback only (refused on any other address); the server
   * says so in its log every time it starts
   */
  noToken?: boolean;
  /** WebSocket limits (connections, message size, heartbeat); tests shorten them */
  websocket?: Partial<WebSocketLimits>;
  ports?: Ports;
  log?: (line: string) => void;
}

export interface WebServer {
  /** the address to open, with the token when there is one */
  url: string;
  /** http://HOST:PORT */
  origin: string;
  port: number;
  token?: string;
  service: WorkstationService;
  close(): Promise<void>;
}


const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const TOKEN_COOKIE = 'sam2unet_token';

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

/**
 * How an exported file is served: reports open in the browser (HTML in a tab, PDF in its viewer,
 * CSV and JSON as text), masks download. A report page is sandboxed with no scripts and nothing
 * fetched: it is self-contained (inline styles, data: images), so it cannot act as the app.
 */
export function exportHeaders(name: string): Record<string, string> {
  const filename = name.replace(/["\\\r\n]/g, '');
  const inline = (type: string, extra: Record<string, string> = {}) => ({ 'Content-Type': type, 'Content-Disposition': `inline; filename="${filename}"`, ...extra });
  const extension = /\.([a-z0-9]+)$/i.exec(name)?.[1]?.toLowerCase();
  switch (extension) {
    case 'html':
      return inline('text/html; charset=utf-8', { 'Content-Security-Policy': "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'" });
    case 'pdf':
      return inline('application/pdf');
    case 'csv':
      return inline('text/csv; charset=utf-8');
    case 'json':
      return inline('application/json; charset=utf-8');
    default:
      return { 'Content-Type': 'application/octet-stream', 'Content-Disposition': `attachment; filename="${filename}"` };
  }
}

export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exportDir = resolve(options.exportDir);
  mkdirSync(exportDir, { recursive: true });
  if (options.noToken && (!isLoopback(host) || options.token)) throw new Error('noToken is only for tests on loopback, without a token');
  const token = options.noToken ? undefined : (options.token ?? randomBytes(24).toString('base64url'));
  if (!token) log('WARNING: serving WITHOUT A TOKEN (tests only): any local process or user can drive this server and read its files');
  // the sample study is written (and so may be read) under the data folder whatever the roots
  const samplesDir = options.dataDir ? join(resolve(options.dataDir), 'samples') : undefined;
  // studies opened from a PACS are fetched into the data folder, and read from there whatever the roots;
  // so are the studies saved as reviewed (the fine-tuning set)
  const pacsCacheDir = options.dataDir ? join(resolve(options.dataDir), 'pacs-cache') : undefined;
  const reviewedDir = options.dataDir ? join(resolve(options.dataDir), 'reviewed') : undefined;
  const roots = options.roots ? new ReadRoots([...options.roots, ...(samplesDir ? [samplesDir] : []), ...(pacsCacheDir ? [pacsCacheDir] : []), ...(reviewedDir ? [reviewedDir] : [])], { internal: [DEFAULT_MODEL_DIR] }) : undefined;
  const readHint = `it is outside the folders this server may read (${(options.roots ?? []).join(', ')})`;
  const service = new WorkstationService({
    mode: 'web',
    ports: options.ports,
    modelsDir: options.modelsDir,
    ...(options.dataDir
      ? { settings: new SettingsStore(join(options.dataDir, 'settings.json'), log), trainingDir: join(resolve(options.dataDir), 'training') }
      : {}),
    ...(roots
      ? {
          checkReadable: (path: string) => roots.check(path, readHint),
          browseRoots: () => options.roots!,
        }
      : {}),
    ...(samplesDir ? { samplesDir } : {}),
    // PACS passwords and tokens: a file of the data folder readable by the server's user only (0600)
    ...(options.dataDir ? { pacsSecrets: new FileSecretStore(join(resolve(options.dataDir), 'pacs-secrets.json')), pacsCacheDir } : {}),
    ...(reviewedDir ? { reviewedDir } : {}),
    log,
    // The browser cannot name a server path to write to: everything lands in the export folder.
    resolveExportPath: (_request, suggestedName) => {
      const target = join(exportDir, suggestedName);
      // a link planted in the export folder must not carry the write outside it
      const link = symlinkBelow(exportDir, target);
      if (link) throw new UserError(`refusing to write ${target}: ${link} is a symbolic link inside the export folder`);
      return target;
    },
    downloadUrl: (file) => {
      const inside = relative(exportDir, resolve(file));
      if (inside.startsWith('..') || isAbsolute(inside)) return undefined;
      return `/exports/${inside.split(sep).map(encodeURIComponent).join('/')}`;
    },
  });

  // every call of every connection: checked against the contract, run within the read roots
  const api = apiDispatcher(service, { log, around: (run) => withReadScope(roots?.scope(readHint), run) });

  const sockets = new Set<import('node:stream').Duplex>();
  const server = createServer((request, response) => {
    void serveHttp(request, response).catch((err) => {
      log(`http ${request.url}: ${errorMessage(err)}`);
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });

  let ownHosts: string[] = [];
  // DNS rebinding: a hostile page can make its own name resolve to 127.0.0.1, but it cannot
  // change the Host header, so only our own names are served. Beyond loopback the machine has
  // names we cannot know; there the token (which a rebinding page does not have) guards instead.
  const ownHost = (request: IncomingMessage) => (token !== undefined && !isLoopback(host)) || ownHosts.includes(request.headers.host ?? '');
  const tokenMatches = (candidate: string | null | undefined) => {
    if (!token || !candidate) return false;
    const a = Buffer.from(candidate);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const cookieToken = (request: IncomingMessage) =>
    (request.headers.cookie ?? '')
      .split(';')
      .map((c) => c.trim())
      .find((c) => c.startsWith(`${TOKEN_COOKIE}=`))
      ?.slice(TOKEN_COOKIE.length + 1);
  const authorized = (request: IncomingMessage, url: URL) => !token || tokenMatches(cookieToken(request)) || tokenMatches(url.searchParams.get('token'));
  const sameOrigin = (request: IncomingMessage) => {
    const origin = request.headers.origin;
    // Non-browser clients send no Origin; browsers always do on WebSocket upgrades.
    return origin === undefined || ownHosts.some((h) => origin === `http://${h}`) || (token !== undefined && origin === `http://${request.headers.host ?? ''}`);
  };

  async function serveHttp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const headers = {
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
    };
    if (!ownHost(request)) {
      response.writeHead(421, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('misdirected request\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
      return;
    }
    if (!authorized(request, url)) {
      response.writeHead(401, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('open the address with the token that `sam2unet serve` printed\n');
      return;
    }
    if (token && url.searchParams.has('token')) {
      // the token moves into a cookie, out of the address bar and the history
      url.searchParams.delete('token');
      response.writeHead(303, { ...headers, Location: `${url.pathname}${url.search}`, 'Set-Cookie': `${TOKEN_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/` }).end();
      return;
    }
    if (url.pathname.startsWith('/exports/')) {
      const wanted = resolveUnder(exportDir, url.pathname.slice('/exports'.length));
      // only what the app wrote there: never a symlink to somewhere else
      const file = wanted && !symlinkBelow(exportDir, wanted) ? await readStatic(exportDir, url.pathname.slice('/exports'.length)) : null;
      if (!file) {
        response.writeHead(404, headers).end('not found');
        return;
      }
      const name = basename(resolveUnder(exportDir, url.pathname.slice('/exports'.length))!);
      response.writeHead(200, { ...headers, ...exportHeaders(name) });
      response.end(request.method === 'HEAD' ? undefined : file.body);
      return;
    }
    if (!(await rendererBuilt(options.rendererDir))) {
      response.writeHead(503, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('The renderer is not built: run `npm run build:renderer`, then reload.\n');
      return;
    }
    const file = await readStatic(options.rendererDir, url.pathname);
    if (!file) {
      response.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    response.writeHead(200, { ...headers, 'Content-Type': file.type, 'Content-Security-Policy': rendererCsp() });
    response.end(request.method === 'HEAD' ? undefined : file.body);
  }

  const hub = new WebSocketHub(options.websocket, log);
  // a handshake or request that never completes does not hold its socket for long
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  server.on('upgrade', (request, socket, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== '/api' || !ownHost(request) || !sameOrigin(request) || !authorized(request, url)) {
      log(`refused WebSocket ${url.pathname} from origin ${request.headers.origin ?? '(none)'}`);
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // the connection's channel (rpc/channel.ts): binary frames, one per message, in order
    const received = new Set<(message: unknown) => void>();
    const closed = new Set<(reason: string) => void>();
    let connection: WebSocketConnection | undefined;
    const transport: Transport = {
      send: (message) => connection?.send(encodeFrame(message)),
      onMessage(listener) {
        received.add(listener);
        return () => received.delete(listener);
      },
      onClose(listener) {
        closed.add(listener);
        return () => closed.delete(listener);
      },
    };
    hub.accept(
      request,
      socket,
      head,
      {
        onMessage: (data, isText) => {
          let message: unknown;
          try {
            if (isText) throw new Error('text frames are not part of the protocol');
            message = decodeFrame(data);
          } catch (err) {
            log(`refused malformed message: ${errorMessage(err)}`);
            return;
          }
          for (const listener of received) listener(message);
        },
        onClose: () => closed.forEach((listener) => listener('the browser closed the connection')),
      },
      (opened) => {
        connection = opened;
        serveApi(transport, service, api);
      },
    );
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolvePromise());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  ownHosts = [...new Set([`${shownHost}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])];
  const origin = `http://${shownHost}:${port}`;
  return {
    url: token ? `${origin}/?token=${token}` : `${origin}/`,
    origin,
    port,
    ...(token ? { token } : {}),
    service,
    close: async () => {
      hub.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
      await service.dispose();
    },
  };
}
