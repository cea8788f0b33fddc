/**
 * The three fine-tuning strategies on the golden mini model (../shared/golden/sam2unet_mini,
 * batch 1, 64×64): which parameters each trains, and LoRA's two promises — with lora_B = 0 it is
 * the loaded model exactly, and merging the factors into the weights for inference is exact.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { Weights } from '../../../main/core/onnx/layers.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { readCheckpoint, type LoadedCheckpoint } from '../../../main/core/model/checkpoint.ts';
import { blockPlan } from '../../../main/core/model/config.ts';
import { buildSam2UNetGraph } from '../../../main/core/model/engine.ts';
import { expectedSam2UNetKeys } from '../../../main/core/model/keys.ts';
import { buildSam2UNet } from '../../../main/core/model/sam2unet.ts';
import { tensor, type StateDict, type Tensor } from '../../../main/core/model/tensor.ts';
import { initLora, mergeLora } from '../../../main/core/train/init.ts';
import type { LoraOptions } from '../../../main/core/train/defaults.ts';
import { buildTrainGraph, LORA_TARGET, loraKeys, type Strategy } from '../../../main/core/train/train-graph.ts';
import { TrainStepSession } from '../../../main/core/train/train-step.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

const dir = resolve(process.cwd(), '../shared/golden/sam2unet_mini');
const manifest = JSON.parse(readFileSync(resolve(dir, 'manifest.json'), 'utf8')) as { trainable_params: number; frozen_params: number };
const SIZE = 64;
const LORA: LoraOptions = { rank: 4, alpha: 8 };

const clone = (weights: StateDict): StateDict => new Map([...weights].map(([k, t]) => [k, tensor([...t.shape], Float32Array.from(t.data))]));
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function sampleBatch(outChannels: number): { input: Float32Array; mask: Float32Array } {
  const random = mulberry32(11);
  const input = Float32Array.from({ length: 3 * SIZE * SIZE }, () => random() * 4 - 2);
  const mask = new Float32Array(outChannels * SIZE * SIZE);
  for (let c = 0; c < outChannels; c++) {
    for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) mask[(c * SIZE + y) * SIZE + x] = Math.hypot(y - 30, x - 25) < 12 - 3 * c ? 1 : 0;
  }
  return { input, mask };
}

async function runInference(g: Graph, input: Float32Array): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, [1, 3, SIZE, SIZE]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

/**
 * The unmerged LoRA model in eval mode: each target weight is W + (α/r)·B·A computed inside the
 * graph from the separate factors, exactly what the train graph evaluates.
 */
function unmergedLoraGraph(ckpt: LoadedCheckpoint, weights: StateDict, lora: LoraOptions): Graph {
  const g = new Graph();
  g.inferenceOnly = true;
  const input = g.input('input', 'float32', [1, 3, SIZE, SIZE]);
  const inside = new Set<string>();
  let hooked = 0;
  g.paramHook = (name: string, t: Tensor) => {
    if (!LORA_TARGET.test(name) || inside.has(name)) return undefined;
    inside.add(name);
    try {
      const { a, b } = loraKeys(name);
      hooked++;
      const delta = g.mul(g.matmul(g.param(b, weights.get(b)!), g.param(a, weights.get(a)!)), g.scalar(lora.alpha / lora.rank));
      return g.add(g.param(name, t), delta);
    } finally {
      inside.delete(name);
    }
  };
  const outs = buildSam2UNet(g, input, ckpt.config, new Weights(weights), SIZE, SIZE, { outChannels: ckpt.outChannels, foldBatchNorm: false });
  g.paramHook = undefined;
  expect(hooked).toBe(2 * blockPlan(ckpt.config).length);
  g.output('out', outs.out);
  g.output('out1', outs.out1);
  g.output('out2', outs.out2);
  return g;
}

const maxAbs = (a: Float32Array, b: Float32Array): number => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i]!)), 0);

describe('fine-tuning strategies (sam2unet_mini, batch 1, 64×64)', () => {
  let ckpt: LoadedCheckpoint;
  beforeAll(async () => {
    ckpt = await readCheckpoint(resolve(dir, 'sam2unet.pth'));
  });

  it('trainable parameter counts per strategy', () => {
    const specs = expectedSam2UNetKeys(ckpt.config, ckpt.outChannels);
    const params = specs.filter((s) => !s.buffer);
    const count = (keep: (s: (typeof specs)[number]) => boolean): number => params.filter(keep).reduce((n, s) => n + numel(s.shape), 0);
    const up4 = count((s) => s.group === 'up4');
    const adapterExpected = manifest.trainable_params - up4;
    expect(adapterExpected).toBe(1_924_755);
    // every trunk parameter, pos_embed and pos_embed_window included: train graphs compute the
    // positional embedding with graph ops (inference bakes it into one constant), so full trains it
    expect(count((s) => s.group === 'trunk')).toBe(manifest.frozen_params);
    const fullExpected = adapterExpected + manifest.frozen_params;
    let loraFactors = 0;
    for (const b of blockPlan(ckpt.config)) loraFactors += LORA.rank * (b.dim + 3 * b.dimOut) + LORA.rank * (2 * b.dimOut);
    const loraExpected = adapterExpected + loraFactors;

    const weights = clone(ckpt.weights);
    initLora(weights, ckpt.config, LORA);
    const expected: Record<Strategy, number> = { adapter: adapterExpected, full: fullExpected, lora: loraExpected };
    const lines: string[] = [];
    for (const strategy of ['adapter', 'full', 'lora'] as const) {
      const plan = buildTrainGraph(ckpt.config, weights, { batch: 1, height: SIZE, width: SIZE, outChannels: ckpt.outChannels, strategy, lora: LORA });
      lines.push(`  ${strategy}: ${plan.trainableCount.toLocaleString('en')} trainable in ${plan.trainable.length} tensors, ${plan.frozenCount.toLocaleString('en')} frozen; unused: ${plan.unused.join(', ')}`);
      expect(plan.trainableCount, strategy).toBe(expected[strategy]);
      const unused = [...plan.unused].sort();
      const up4Keys = params.filter((s) => s.group === 'up4').map((s) => s.key);
      expect(unused, `${strategy}: unused`).toEqual([...up4Keys].sort());
      if (strategy === 'lora') expect(plan.trainable.filter((k) => /\.lora_[AB]$/.test(k)).length).toBe(4 * blockPlan(ckpt.config).length);
      if (strategy === 'full') expect(plan.frozenCount).toBe(0);
      else expect(plan.frozenCount).toBe(manifest.frozen_params);
      if (strategy === 'full') expect(plan.trainable).toEqual(expect.arrayContaining(['encoder.pos_embed', 'encoder.pos_embed_window']));
    }
    console.log(lines.join('\n'));
  });

  it('the positional embedding as graph ops (what full fine-tuning differentiates) equals the baked constant inference uses', async () => {
    const { input } = sampleBatch(ckpt.outChannels);
    const baked = await runInference(buildSam2UNetGraph(ckpt.config, ckpt.weights, { height: SIZE, width: SIZE, foldBatchNorm: false }), input);
    const g = new Graph();
    g.inferenceOnly = true;
    g.trainable = true;
    const x = g.input('input', 'float32', [1, 3, SIZE, SIZE]);
    const outs = buildSam2UNet(g, x, ckpt.config, new Weights(ckpt.weights), SIZE, SIZE, { outChannels: ckpt.outChannels, foldBatchNorm: false });
    expect(g.initializers.has('encoder.pos_embed')).toBe(true);
    g.output('out', outs.out);
    const ops = await runInference(g, input);
    const d = maxAbs(ops.out!, baked.out!);
    console.log(`  positional embedding as ops vs baked: max |Δ out| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-5);
  });

  it('LoRA with lora_B = 0 outputs exactly what the adapter strategy does; after one step mergeLora is exact (1e-5)', async () => {
    const { input, mask } = sampleBatch(ckpt.outChannels);
    const adapter = await TrainStepSession.create({ config: ckpt.config, weights: clone(ckpt.weights), batch: 1, height: SIZE, width: SIZE, outChannels: ckpt.outChannels, strategy: 'adapter', threads: 1 });
    const adapterStep = await adapter.run(input, mask, 1e-3, 1);
    await adapter.dispose();
    // torch's BatchNorm counts the forward passes it ran in train mode: up4 never runs, so its counters stay
    const counter = (weights: StateDict, key: string): number => weights.get(key)!.data[0]!;
    for (const key of ['rfb1.branch0.0.bn.num_batches_tracked', 'up1.conv.double_conv.1.num_batches_tracked', 'up3.conv.double_conv.4.num_batches_tracked']) {
      expect(counter(adapter.weights, key), key).toBe(counter(ckpt.weights, key) + 1);
    }
    for (const key of ['up4.conv.double_conv.1.num_batches_tracked', 'up4.conv.double_conv.4.num_batches_tracked']) {
      expect(counter(adapter.weights, key), key).toBe(counter(ckpt.weights, key));
    }

    const loraWeights = clone(ckpt.weights);
    initLora(loraWeights, ckpt.config, LORA);
    const lora = await TrainStepSession.create({ config: ckpt.config, weights: loraWeights, batch: 1, height: SIZE, width: SIZE, outChannels: ckpt.outChannels, strategy: 'lora', lora: LORA, threads: 1 });
    const loraStep = await lora.run(input, mask, 1e-3, 1);
    await lora.dispose();
    for (const name of ['out', 'out1', 'out2']) {
      const d = maxAbs(loraStep.tensors.get(name)!.data, adapterStep.tensors.get(name)!.data);
      expect(d, `${name}: lora (B = 0) vs adapter`).toBe(0);
    }
    expect(Array.from(loraStep.loss)).toEqual(Array.from(adapterStep.loss));

    // the step moved the factors (Adam's first step is ≈ lr per element), so the merge has something to do
    let largestB = 0;
    for (const [k, t] of loraWeights) if (k.endsWith('.lora_B')) largestB = Math.max(largestB, ...Array.from(t.data, Math.abs));
    expect(largestB).toBeGreaterThan(5e-4);

    const merged = mergeLora(loraWeights, LORA);
    expect([...merged.keys()].some((k) => k.includes('lora_'))).toBe(false);
    // the merged tensors against W + (α/r)·B·A in float64
    let worstWeight = 0;
    const scale = LORA.alpha / LORA.rank;
    for (const [key, t] of loraWeights) {
      if (!LORA_TARGET.test(key)) continue;
      const { a, b } = loraKeys(key);
      const A = loraWeights.get(a)!;
      const B = loraWeights.get(b)!;
      const [out, inF] = t.shape as [number, number];
      const got = merged.get(key)!.data;
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inF; i++) {
          let s = 0;
          for (let k = 0; k < LORA.rank; k++) s += B.data[o * LORA.rank + k]! * A.data[k * inF + i]!;
          worstWeight = Math.max(worstWeight, Math.abs(got[o * inF + i]! - (t.data[o * inF + i]! + scale * s)));
        }
      }
    }
    expect(worstWeight).toBeLessThan(1e-6);

    const mergedOut = await runInference(buildSam2UNetGraph(ckpt.config, merged, { height: SIZE, width: SIZE, foldBatchNorm: false }), input);
    const unmergedOut = await runInference(unmergedLoraGraph(ckpt, loraWeights, LORA), input);
    const withoutLora = await runInference(buildSam2UNetGraph(ckpt.config, new Map([...merged].map(([k, t]) => [k, LORA_TARGET.test(k) ? loraWeights.get(k)! : t])), { height: SIZE, width: SIZE, foldBatchNorm: false }), input);
    const report: string[] = [];
    for (const name of ['out', 'out1', 'out2']) {
      const d = maxAbs(mergedOut[name]!, unmergedOut[name]!);
      const effect = maxAbs(withoutLora[name]!, unmergedOut[name]!);
      report.push(`${name} ${d.toExponential(2)} (LoRA's own effect ${effect.toExponential(2)})`);
      expect(d, name).toBeLessThan(1e-5);
      expect(effect, `${name}: the LoRA update changes the output`).toBeGreaterThan(1e-4);
    }
    console.log(`  merged vs unmerged LoRA, eval mode, max |Δlogit|: ${report.join(', ')}; merged weights vs float64 W + (α/r)BA: ${worstWeight.toExponential(2)}`);
  });
});
