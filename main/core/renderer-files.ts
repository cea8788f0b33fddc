/**
 * Serving the built renderer: the path guard, the MIME types and the Content-Security-Policy,
 * shared by the web bridge (HTTP) and the Electron app (app:// protocol).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';

/**
 * No eval and no inline scripts. 'wasm-unsafe-eval' lets WebAssembly compile (Cornerstone's
 * codecs and vtk.js use it); inline styles are allowed because Cornerstone sizes its canvases
 * through style attributes.
 */
export function rendererCsp(connectSrc: string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    `connect-src 'self' ${connectSrc.join(' ')}`.trim(),
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

export function mimeType(file: string): string {
  return MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Maps a URL path onto a file under `root`, or null when it escapes the root or names
 * something odd. "/" is index.html.
 */
export function resolveUnder(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const relative = decoded === '/' || decoded === '' ? 'index.html' : decoded.replace(/^\/+/, '');
  const rootAbs = resolve(root);
  const file = resolve(rootAbs, normalize(relative));
  if (file !== rootAbs && !file.startsWith(rootAbs + sep)) return null;
  return file;
}

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** Reads a renderer file, or returns null when there is none (caller answers 404). */
export async function readStatic(root: string, urlPath: string): Promise<StaticFile | null> {
  const file = resolveUnder(root, urlPath);
  if (!file) return null;
  try {
    const info = await stat(file);
    if (!info.isFile()) return null;
    return { body: await readFile(file), type: mimeType(file) };
  } catch {
    return null;
  }
}

export function rendererBuilt(root: string): Promise<boolean> {
  return stat(join(root, 'index.html')).then(
    (s) => s.isFile(),
    () => false,
  );
}
