#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader so that the CLI, its worker
// threads and the tests all execute the same code without a build step.
import { relaunchWithMemoryTuning } from './memory-tuning.mjs';

if (!relaunchWithMemoryTuning()) {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../main/cli/index.ts');
  process.exitCode = await main(process.argv.slice(2));
}
