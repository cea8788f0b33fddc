/**
 * Fresh weights with PyTorch's default initialisation (kaiming-uniform with a = √5 for Linear and
 * Conv2d, ones/zeros for norms, BatchNorm statistics 0/1), for training without pretrained
 * weights and for LoRA factors (PEFT's choice: A kaiming-uniform, B zero, so training starts from
 * the loaded model exactly).
 */
import { blockPlan, type HieraConfig } from '../model/config.ts';
import { expectedSam2UNetKeys } from '../model/keys.ts';
import { tensor, type StateDict } from '../model/tensor.ts';
import { gaussian, mulberry32, hash32 } from '../util/random.ts';
import type { LoraOptions } from './defaults.ts';
import { LORA_TARGET, loraKeys } from './train-graph.ts';

function uniform(n: number, bound: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * bound;
  return out;
}

export function initSam2UNetWeights(config: HieraConfig, outChannels: number, seed = 0): StateDict {
  const specs = expectedSam2UNetKeys(config, outChannels);
  const shapes = new Map(specs.map((s) => [s.key, s.shape]));
  const weights: StateDict = new Map();
  for (const spec of specs) {
    const random = mulberry32(hash32(seed, ...Array.from(spec.key, (c) => c.charCodeAt(0))));
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const { key, shape } = spec;
    let data: Float32Array;
    if (key.endsWith('running_var')) data = new Float32Array(n).fill(1);
    else if (key.endsWith('running_mean') || key.endsWith('num_batches_tracked')) data = new Float32Array(n);
    else if (/pos_embed(_window)?$/.test(key)) {
      const normal = gaussian(random);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = Math.max(-2, Math.min(2, normal())) * 0.02;
    } else if (key.endsWith('.weight') && shape.length >= 2) {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      data = uniform(n, 1 / Math.sqrt(fanIn), random);
    } else if (key.endsWith('.bias')) {
      const weightShape = shapes.get(`${key.slice(0, -'.bias'.length)}.weight`);
      data = weightShape && weightShape.length >= 2 ? uniform(n, 1 / Math.sqrt(weightShape.slice(1).reduce((a, b) => a * b, 1)), random) : new Float32Array(n);
    } else if (key.endsWith('.weight')) data = new Float32Array(n).fill(1);
    else throw new Error(`no initialisation rule for "${key}"`);
    weights.set(key, tensor([...shape], data));
  }
  return weights;
}

/** Adds lora_A (kaiming-uniform) and lora_B (zeros) for every LoRA target that lacks them. */
export function initLora(weights: StateDict, config: HieraConfig, lora: LoraOptions, seed = 0): void {
  const depth = blockPlan(config).length;
  for (const [key, t] of [...weights]) {
    if (!LORA_TARGET.test(key)) continue;
    const { a, b } = loraKeys(key);
    if (weights.has(a) && weights.has(b)) continue;
    const [out, inF] = t.shape as [number, number];
    const random = mulberry32(hash32(seed, depth, ...Array.from(a, (c) => c.charCodeAt(0))));
    weights.set(a, tensor([lora.rank, inF], uniform(lora.rank * inF, 1 / Math.sqrt(inF), random)));
    weights.set(b, tensor([out, lora.rank]));
  }
}

/** W + (α/r)·B·A for every LoRA target, dropping the factors: the inference checkpoint costs no latency. */
export function mergeLora(weights: StateDict, lora: LoraOptions): StateDict {
  const merged: StateDict = new Map();
  const scale = lora.alpha / lora.rank;
  for (const [key, t] of weights) {
    if (/\.lora_[AB]$/.test(key)) continue;
    if (!LORA_TARGET.test(key)) {
      merged.set(key, t);
      continue;
    }
    const { a, b } = loraKeys(key);
    const A = weights.get(a);
    const B = weights.get(b);
    if (!A || !B) {
      merged.set(key, t);
      continue;
    }
    const [out, inF] = t.shape as [number, number];
    const r = A.shape[0]!;
    const data = Float32Array.from(t.data);
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < r; k++) {
        const bv = B.data[o * r + k]! * scale;
        if (bv === 0) continue;
        for (let i = 0; i < inF; i++) data[o * inF + i]! += bv * A.data[k * inF + i]!;
      }
    }
    merged.set(key, tensor([out, inF], data));
  }
  return merged;
}
