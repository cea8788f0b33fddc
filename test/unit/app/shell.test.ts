/**
 * The desktop shell's security settings, asserted without Electron (which cannot run here), and
 * the layering rule that keeps core usable from the CLI, the web server and the tests.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RENDERER_ORIGIN, secureWebPreferences } from '../../../main/app/window-options.ts';
import { rendererCsp } from '../../../main/core/renderer-files.ts';

const root = resolve(import.meta.dirname, '../../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mjs|js)$/.test(entry.name) ? [path] : [];
  });
}

describe('desktop shell', () => {
  it('opens its window isolated, sandboxed and without Node', () => {
    expect(secureWebPreferences('/app/preload.cjs')).toEqual({
      preload: '/app/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    });
    const main = readFileSync(join(root, 'main/app/main.ts'), 'utf8');
    expect(main).toContain("webPreferences: secureWebPreferences(join(__dirname, 'preload.cjs'))");
    // window-open, navigation and webview guards on every web contents (main/app/guards.ts)
    expect(main).toContain("app.on('web-contents-created', (_event, contents) => guardWebContents(contents, log))");
    expect(main).not.toMatch(/file:\/\//);
    expect(RENDERER_ORIGIN).toBe('app://renderer');
  });

  it('serves the renderer under a strict Content-Security-Policy', () => {
    const csp = Object.fromEntries(
      rendererCsp()
        .split(';')
        .map((d) => d.trim())
        .filter(Boolean)
        .map((d) => [d.split(/\s+/)[0], d.split(/\s+/).slice(1)]),
    );
    expect(csp['default-src']).toEqual(["'self'"]);
    expect(csp['object-src']).toEqual(["'none'"]);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    expect(csp['base-uri']).toEqual(["'none'"]);
    // no inline or evaluated script: wasm compilation is the one allowance Cornerstone's codecs need
    expect(csp['script-src']).not.toContain("'unsafe-inline'");
    expect(csp['script-src']).not.toContain("'unsafe-eval'");
    for (const sources of Object.values(csp)) expect(sources).not.toContain('*');
  });

  it('keeps main/core free of Electron', () => {
    const offenders = sources(join(root, 'main/core')).filter((file) => /from ['"]electron['"]|require\(['"]electron['"]\)|import\(['"]electron['"]\)/.test(readFileSync(file, 'utf8')));
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });
});
