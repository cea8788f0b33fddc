#!/usr/bin/env node
// The `sam2unet` command. In a development checkout (tsx, a devDependency, is installed) it runs
// the TypeScript sources through tsx's loader, as its worker threads and the tests do: an edit
// takes effect at once and a build left in dist/ can never shadow it. Where tsx is not installed
// (npm ci --omit=dev, a production install) it runs the CLI that `npm run build:app` compiled
// into dist/app/cli.cjs, with its compiled workers beside it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { relaunchWithMemoryTuning } from './memory-tuning.mjs';

const COMPILED = fileURLToPath(new URL('../dist/app/cli.cjs', import.meta.url));

function resolvable(specifier) {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

async function loadCli() {
  if (resolvable('tsx/esm/api')) {
    const { register } = await import('tsx/esm/api');
    register();
    return import('../main/cli/index.ts');
  }
  if (existsSync(COMPILED)) return createRequire(import.meta.url)(COMPILED);
  process.stderr.write(`sam2unet: neither tsx (a development install: npm ci) nor the compiled CLI (${COMPILED}: npm run build:app) is there\n`);
  process.exit(1);
}

if (!relaunchWithMemoryTuning()) {
  const { main } = await loadCli();
  process.exitCode = await main(process.argv.slice(2));
}
