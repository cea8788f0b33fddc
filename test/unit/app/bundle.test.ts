/**
 * The Electron bundles as Electron would load them: the sandboxed preload may only require
 * 'electron', and must expose exactly api.ts on window.sam2unet; the main bundle may only
 * require Node built-ins, electron and tsx's loader.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { resolve } from 'node:path';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_METHODS } from '../../../main/core/api.ts';

const root = resolve(import.meta.dirname, '../../..');
const requires = (code: string) => [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!);

describe('Electron bundles (scripts/build-app.mjs)', () => {
  beforeAll(async () => {
    const { buildApp } = await import('../../../scripts/build-app.mjs');
    await buildApp({ quiet: true });
  });

  it('preload needs nothing but electron, and exposes exactly the api on window.sam2unet', async () => {
    const code = readFileSync(resolve(root, 'dist/app/preload.cjs'), 'utf8');
    expect(new Set(requires(code))).toEqual(new Set(['electron']));
    const exposed: Record<string, Record<string, unknown>> = {};
    const invocations: unknown[][] = [];
    const electron = {
      contextBridge: { exposeInMainWorld: (key: string, value: Record<string, unknown>) => (exposed[key] = value) },
      ipcRenderer: {
        invoke: async (...args: unknown[]) => {
          invocations.push(args);
          return { ok: true, value: 'pong' };
        },
        on: () => {},
        removeListener: () => {},
      },
      webUtils: { getPathForFile: () => '' },
    };
    runInNewContext(code, {
      require: (name: string) => {
        if (name !== 'electron') throw new Error(`sandboxed preload cannot require ${name}`);
        return electron;
      },
      module: { exports: {} },
      exports: {},
      console,
      TextEncoder,
      TextDecoder,
    });
    expect(Object.keys(exposed)).toEqual(['sam2unet']);
    expect(Object.keys(exposed.sam2unet!).sort()).toEqual([...API_METHODS, 'onEvent', 'openDropped'].sort());
    expect(await (exposed.sam2unet!.listModels as (r: object) => Promise<unknown>)({})).toBe('pong');
    expect(invocations).toEqual([['sam2unet:call', 'listModels', {}]]);
  });

  it('main bundles the Electron shell only; core loads from source through tsx', () => {
    const code = readFileSync(resolve(root, 'dist/app/main.cjs'), 'utf8');
    const external = requires(code).filter((name) => !builtinModules.includes(name.replace(/^node:/, '')));
    expect(new Set(external)).toEqual(new Set(['electron', 'tsx/esm/api']));
    expect(code).toContain('main/app/ipc.ts');
    expect(code).toContain("contextIsolation: true");
    expect(code).toContain("sandbox: true");
    expect(code).toContain("nodeIntegration: false");
  });
});
