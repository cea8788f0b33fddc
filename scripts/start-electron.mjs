#!/usr/bin/env node
// `npm start`: builds the renderer and the Electron bundles, makes sure Electron's binary is
// there (downloading it needs the network), then launches the app. Extra arguments go to the
// app, e.g. `npm start -- --open=../shared/data/phantoms/BraTS20_Training_001`.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from './build-app.mjs';
import { ensureElectronBinary } from './electron-binary.mjs';
import { memoryTuningApplies, tunedEnvironment } from '../bin/memory-tuning.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

const { build } = await import('vite');
await build({ configFile: join(root, 'renderer/vite.config.ts'), logLevel: 'warn' });
await buildApp({ quiet: true });

const problem = ensureElectronBinary(join(root, 'node_modules/electron'));
if (problem) {
  console.error(problem);
  process.exit(1);
}

const electron = require('electron');
// the same memory settings as the sam2unet command (bin/memory-tuning.mjs)
const child = spawn(electron, [root, ...process.argv.slice(2)], { stdio: 'inherit', env: memoryTuningApplies() ? tunedEnvironment() : process.env });
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
