/**
 * Segmentation benchmark: a full 155-slice BraTS phantom study (240×240, 352×352 model input)
 * with random-weight SAM2-UNet models, hiera_t and hiera_l (BraTS heads, 3 channels), on this
 * machine's CPU. Prints model build and load times, first-slice latency, whether batching helps
 * (s/slice at batch 1 vs larger batches on a few slices), seconds per study, and peak memory.
 *
 *   npx tsx test/bench/segment.bench.ts [hiera_t,hiera_l] [--batches 1,2,4] [--size 352]
 *
 * Figures only; nothing passes or fails. The machine's load average is printed alongside: on a
 * shared machine the numbers scale with it.
 */
import { mkdirSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { openPath } from '../../main/core/io/open.ts';
import { segmentStudy } from '../../main/core/jobs/segment.ts';
import { sliceModelFromSession, type SliceModel } from '../../main/core/jobs/slice-model.ts';
import { HIERA_PRESETS, type HieraConfig } from '../../main/core/model/config.ts';
import { buildSam2UNetModel } from '../../main/core/model/engine.ts';
import { expectedSam2UNetKeys } from '../../main/core/model/keys.ts';
import { inputChannels, isEmptySlice, prepareSlices } from '../../main/core/model/preprocess.ts';
import type { StateDict } from '../../main/core/model/tensor.ts';
import { SessionClient } from '../../main/core/onnx/session.ts';
import { mulberry32 } from '../../main/core/util/random.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const presets = (args.find((a) => !a.startsWith('--') && !args[args.indexOf(a) - 1]?.startsWith('--')) ?? 'hiera_t,hiera_l').split(',');
const batches = flag('batches', '1,2,4').split(',').map(Number);
const size = Number(flag('size', '352'));
const cacheDir = resolve('test-output/bench-cache');
mkdirSync(cacheDir, { recursive: true });

/** Random weights with sane norms: LayerNorm/BatchNorm scales 1, running variances 1. */
function randomWeights(config: HieraConfig, outChannels: number): StateDict {
  const random = mulberry32(42);
  const weights: StateDict = new Map();
  for (const spec of expectedSam2UNetKeys(config, outChannels)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/running_var$|norm\d?\.weight$|\.1\.weight$|\.4\.weight$/.test(spec.key) && spec.shape.length === 1) data.fill(1);
    else if (/running_mean$|num_batches_tracked$|\.bias$/.test(spec.key)) data.fill(0);
    else {
      const fanIn = spec.shape.slice(1).reduce((a, b) => a * b, 1) || 1;
      const scale = Math.sqrt(3 / fanIn);
      for (let i = 0; i < n; i++) data[i] = (random() * 2 - 1) * scale;
    }
    weights.set(spec.key, { shape: spec.shape, data });
  }
  return weights;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const load = () => loadavg().map((v) => v.toFixed(1)).join(' ');
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 200);

const study = (await openPath(resolve('../shared/data/phantoms/BraTS20_Training_001'))).studies[0]!;
const channels = inputChannels(study);
const nz = channels[0].dims[2];
const nonEmpty = Array.from({ length: nz }, (_, k) => k).filter((k) => !isEmptySlice(channels, k));
console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model}), load average ${load()}`);
console.log(`study: ${study.name}, ${nz} slices, ${nonEmpty.length} non-empty, model input ${size}×${size}`);

for (const preset of presets) {
  const config = HIERA_PRESETS[preset];
  if (!config) throw new Error(`unknown preset ${preset}`);
  peakRss = 0;
  console.log(`\n== ${preset} (random weights, 3 output channels) — load average ${load()}`);
  let t = performance.now();
  const weights = randomWeights(config, 3);
  const built = await buildSam2UNetModel(config, weights, { height: size, width: size, outChannels: 3, cache: cacheDir });
  weights.clear();
  console.log(`graph: ${built.cached ? 'from cache' : 'built'} in ${((performance.now() - t) / 1000).toFixed(1)} s, ${(built.flops / 1e9).toFixed(1)} GFLOP per slice`);
  t = performance.now();
  const session = await SessionClient.create(built.source, { device: 'cpu' });
  const model: SliceModel = sliceModelFromSession(session, { inputSize: [size, size], outChannels: 3 });
  console.log(`session: ${((performance.now() - t) / 1000).toFixed(1)} s on ${session.provider}, ${session.threads} threads`);
  const probe = nonEmpty.slice(Math.floor(nonEmpty.length / 2) - 4, Math.floor(nonEmpty.length / 2) + 4);
  await model.run(prepareSlices(channels, probe.slice(0, 1), { size: [size, size] }), 1); // warm-up
  const perSlice = new Map<number, number>();
  for (const b of batches) {
    const slices = probe.slice(0, Math.max(b, Math.min(8, Math.floor(8 / b) * b)));
    const t0 = performance.now();
    for (let i = 0; i < slices.length; i += b) {
      const chunk = slices.slice(i, i + b);
      await model.run(prepareSlices(channels, chunk, { size: [size, size] }), chunk.length);
    }
    const ms = (performance.now() - t0) / slices.length;
    perSlice.set(b, ms);
    console.log(`batch ${b}: ${(ms / 1000).toFixed(3)} s per slice over ${slices.length} slices (load ${load()})`);
  }
  const best = [...perSlice.entries()].sort((a, b) => a[1] - b[1])[0]![0];
  const started = performance.now();
  let first = 0;
  const { summary } = await segmentStudy(study, model, { batchSize: best, groundTruth: null }, {
    slice: (r) => {
      if (!first && !r.empty) first = performance.now() - started;
    },
  });
  console.log(
    `study: ${(summary.ms / 1000).toFixed(1)} s for ${summary.slices} slices (${summary.slices - summary.emptySlices} computed, max batch ${best}), ` +
      `${(summary.msPerSlice / 1000).toFixed(3)} s per computed slice, first slice after ${(first / 1000).toFixed(2)} s; ` +
      `peak RSS ${mb(peakRss)}; load average ${load()}`,
  );
  await model.dispose();
}
clearInterval(sampler);
console.log(`\ncache: ${join(cacheDir)}`);
