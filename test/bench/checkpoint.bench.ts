/**
 * Checkpoint I/O figures: writes a synthetic SAM2-UNet of a preset's size as safetensors, then times
 * writeSafetensors, readCheckpoint and the raw readers; prints peak RSS. Any further arguments are
 * existing checkpoints (.pt/.pth/.safetensors, e.g. a real sam2_hiera_large.pt) to time as well.
 *   npx tsx test/bench/checkpoint.bench.ts [preset=hiera_t] [files...]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint } from '../../main/core/model/checkpoint.ts';
import { HIERA_PRESETS } from '../../main/core/model/config.ts';
import { expectedSam2UNetKeys } from '../../main/core/model/keys.ts';
import { readSafetensors, writeSafetensors } from '../../main/core/model/safetensors.ts';
import { numel, type StateDict } from '../../main/core/model/tensor.ts';

const args = process.argv.slice(2);
const presetName = args[0] && HIERA_PRESETS[args[0]] ? args.shift()! : 'hiera_t';
const config = HIERA_PRESETS[presetName]!;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);

async function time<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  console.log(`${label.padEnd(44)} ${(performance.now() - t0).toFixed(0).padStart(6)} ms`);
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'checkpoint-bench-'));
try {
  const weights: StateDict = new Map();
  for (const spec of expectedSam2UNetKeys(config, 1)) {
    const data = new Float32Array(numel(spec.shape));
    for (let i = 0; i < data.length; i += 97) data[i] = Math.sin(i);
    weights.set(spec.key, { shape: spec.shape, data });
  }
  const path = join(dir, `${presetName}.safetensors`);
  await time(`writeSafetensors ${presetName}`, () => writeSafetensors(path, weights));
  console.log(`  file size ${mb(statSync(path).size)}`);
  await time('readSafetensors', () => readSafetensors(path));
  await time('readCheckpoint (detect + validate + finite check)', () => readCheckpoint(path));
  for (const file of args) {
    console.log(`${file} (${mb(statSync(file).size)})`);
    const ck = await time('  readCheckpoint', () => readCheckpoint(file));
    console.log(`  ${ck.kind} ${ck.format}, ${ck.weights.size} tensors, ${ck.ignored.length} ignored`);
  }
} finally {
  clearInterval(sampler);
  rmSync(dir, { recursive: true, force: true });
}
console.log(`peak RSS ${mb(Math.max(peak, process.memoryUsage.rss()))}`);
