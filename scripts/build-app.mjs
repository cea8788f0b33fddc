#!/usr/bin/env node
// Bundles the Electron main process and the preload to CommonJS (dist/app/main.cjs,
// dist/app/preload.cjs). The preload runs sandboxed, so it must be one self-contained file; the
// main bundle holds only the Electron shell and loads the core services from source via tsx.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

export async function buildApp({ quiet = false } = {}) {
  const common = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    sourcemap: 'linked',
    absWorkingDir: root,
    logLevel: quiet ? 'error' : 'warning',
    external: ['electron', 'tsx/esm/api'],
  };
  await Promise.all([
    build({ ...common, entryPoints: ['main/app/main.ts'], outfile: 'dist/app/main.cjs' }),
    build({ ...common, entryPoints: ['main/app/preload.ts'], outfile: 'dist/app/preload.cjs' }),
  ]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildApp();
  console.error('built dist/app/main.cjs and dist/app/preload.cjs');
}
