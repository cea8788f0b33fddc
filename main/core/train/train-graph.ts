/**
 * The train-step graph: SAM2-UNet forward in train mode (batch-statistics BatchNorm with running
 * updates), the structure loss on out/out1/out2, the backward pass of the trainable parameters
 * only (autodiff.ts), and AdamW — one ONNX graph that a plain InferenceSession runs, on any
 * execution provider. Frozen weights stay initializers; trainable weights, optimiser moments and
 * BatchNorm statistics are inputs, and their new values are outputs.
 */
import { UserError } from '../errors.ts';
import { gradients } from '../onnx/autodiff.ts';
import { Graph } from '../onnx/ir.ts';
import { Weights } from '../onnx/layers.ts';
import type { HieraConfig } from '../model/config.ts';
import { expectedSam2UNetKeys, type KeySpec } from '../model/keys.ts';
import { buildSam2UNet } from '../model/sam2unet.ts';
import type { StateDict, Tensor } from '../model/tensor.ts';
import { ADAMW_DEFAULTS, adamwStepFactors, adamwUpdate, type AdamWHyper } from './adamw.ts';
import { batchNormTrain } from './batchnorm.ts';
import { structureLoss, type LossVariant } from './loss.ts';
import { TRAIN_STRATEGIES, type TrainStrategy } from '../api.ts';
import { LORA_DEFAULTS, type LoraOptions } from './defaults.ts';


// the api's list is the one list: the app and the CLI offer the same strategies
export type Strategy = TrainStrategy;
export const STRATEGIES: readonly Strategy[] = TRAIN_STRATEGIES;



/** LoRA targets: attn.qkv and attn.proj of every block (model.md). */
export const LORA_TARGET = /^encoder\.blocks\.\d+\.block\.attn\.(qkv|proj)\.weight$/;

export const loraKeys = (weightKey: string): { a: string; b: string } => {
  const base = weightKey.slice(0, -'.weight'.length);
  return { a: `${base}.lora_A`, b: `${base}.lora_B` };
};

export interface TrainGraphOptions {
  batch: number;
  height: number;
  width: number;
  outChannels: number;
  strategy: Strategy;
  lora?: LoraOptions;
  loss?: LossVariant;
  adamw?: AdamWHyper;
  /** also output grad.<param> (the train-step command writes them; the trainer does not need them) */
  emitGradients?: boolean;
}

export interface TrainGraph {
  graph: Graph;
  /** trainable parameters fed as inputs, in a fixed order */
  trainable: string[];
  /** trainable parameters the loss does not reach (the official up4): PyTorch's AdamW skips them */
  unused: string[];
  /** BatchNorm running statistics fed as inputs and returned as after.<name> */
  buffers: string[];
  frozenCount: number;
  trainableCount: number;
}

export const momentName = (which: 'm' | 'v', param: string): string => `adam.${which}.${param}`;
export const nextMomentName = (which: 'm' | 'v', param: string): string => `next.adam.${which}.${param}`;

/** Which keys a strategy trains (BatchNorm statistics are state, never parameters). */
export function trainableKeys(specs: readonly KeySpec[], strategy: Strategy): string[] {
  return specs
    .filter((s) => !s.buffer && (strategy === 'full' || s.group !== 'trunk'))
    .map((s) => s.key);
}

/**
 * Builds the train-step graph. `weights` must hold every SAM2-UNet key (plus lora_A/lora_B when
 * the strategy is lora; missing factors are a caller error — see initLora).
 */
export function buildTrainGraph(config: HieraConfig, weights: StateDict, opts: TrainGraphOptions): TrainGraph {
  const { batch, height, width, outChannels } = opts;
  if (height % 32 || width % 32) throw new UserError(`input size ${height}×${width} must be a multiple of 32`);
  const specs = expectedSam2UNetKeys(config, outChannels);
  const hyper = opts.adamw ?? ADAMW_DEFAULTS;
  const g = new Graph();
  g.trainable = true;
  const input = g.input('input', 'float32', [batch, 3, height, width]);
  const mask = g.input('mask', 'float32', [batch, outChannels, height, width]);
  const lr = g.input('lr', 'float32', []);
  const step = g.input('step', 'float32', []);

  const bnUpdates = new Map<string, string>();
  g.lowering.BatchNormalization = ([x, gamma, beta, mean, variance], attrs) => {
    const r = batchNormTrain(g, x!, gamma!, beta!, mean!, variance!, (attrs.epsilon as number | undefined) ?? 1e-5);
    bnUpdates.set(mean!, r.runningMean);
    bnUpdates.set(variance!, r.runningVar);
    return [r.y];
  };

  const loraFactors: string[] = [];
  if (opts.strategy === 'lora') {
    const { rank, alpha } = opts.lora ?? LORA_DEFAULTS;
    const inside = new Set<string>();
    g.paramHook = (name: string, t: Tensor) => {
      if (!LORA_TARGET.test(name) || inside.has(name)) return undefined;
      inside.add(name);
      try {
        const { a, b } = loraKeys(name);
        const [out, inF] = t.shape as [number, number];
        const factorA = requireTensor(weights, a, [rank, inF]);
        const factorB = requireTensor(weights, b, [out, rank]);
        const base = g.param(name, t);
        const delta = g.mul(g.matmul(g.param(b, factorB), g.param(a, factorA)), g.scalar(alpha / rank));
        loraFactors.push(a, b);
        return g.add(base, delta);
      } finally {
        inside.delete(name);
      }
    };
  }

  const outs = buildSam2UNet(g, input, config, new Weights(weights), height, width, { outChannels, foldBatchNorm: false });
  g.lowering = {};
  g.paramHook = undefined;

  const losses = [outs.out, outs.out1, outs.out2].map((o) => structureLoss(g, o, mask, opts.loss ?? 'official'));
  const total = g.add(g.add(losses[0]!, losses[1]!), losses[2]!);
  const lossVector = g.concat([...losses, total].map((l) => g.reshape(l, [1])), 0);
  g.output('loss', lossVector);
  g.output('out', outs.out);
  g.output('out1', outs.out1);
  g.output('out2', outs.out2);

  const candidates = opts.strategy === 'lora' ? [...trainableKeys(specs, 'adapter'), ...loraFactors] : trainableKeys(specs, opts.strategy);
  // parameters the graph never read (none in practice: up4's are not even built) simply have no gradient
  const trainable = candidates.filter((k) => g.initializers.has(k));
  const unused = candidates.filter((k) => !g.initializers.has(k));
  const buffers = [...bnUpdates.keys()];
  for (const name of [...trainable, ...buffers]) promoteToInput(g, name);

  const grads = gradients(g, total, trainable);
  const updated: string[] = [];
  for (const name of trainable) {
    let grad = grads.get(name);
    if (!grad) {
      unused.push(name);
      continue;
    }
    // output() may rename the value, so keep using the name it returns
    if (opts.emitGradients) grads.set(name, (grad = g.output(`grad.${name}`, grad)));
    updated.push(name);
  }
  // in a scope of its own, so profiles tell the optimiser's nodes from the backward pass's
  g.scope('adamw', () => flatAdamW(g, updated, (name) => grads.get(name)!, adamwStepFactors(g, lr, step, hyper), hyper));
  for (const [buffer, value] of bnUpdates) g.output(`after.${buffer}`, value);

  let frozenCount = 0;
  for (const init of g.initializers.values()) if (!init.name.includes('@') && weights.has(init.name)) frozenCount += init.data.length;
  const trainableCount = updated.reduce((n, k) => n + g.shape(k).reduce<number>((p, d) => p * (d as number), 1), 0);
  return { graph: g, trainable: updated, unused: [...new Set(unused)], buffers, frozenCount, trainableCount };
}

/**
 * AdamW over all trainable parameters at once: parameters, gradients and moments are flattened
 * into one vector each, updated by one chain of elementwise ops, and split back into the
 * per-parameter outputs. Per parameter, the update is a dozen ops on often tiny tensors (a
 * BatchNorm's 64 values); for the full strategy's ~800 parameters that was 10 % of a small
 * model's step in per-op overhead, and a third of the graph's nodes (session creation time).
 */
function flatAdamW(g: Graph, names: readonly string[], gradOf: (name: string) => string, factors: ReturnType<typeof adamwStepFactors>, hyper: AdamWHyper): void {
  if (!names.length) return;
  const shapes = names.map((name) => g.shape(name).map(Number));
  const sizes = shapes.map((shape) => shape.reduce((n, d) => n * d, 1));
  const flat = (values: string[]): string => (values.length === 1 ? g.reshape(values[0]!, [-1]) : g.concat(values.map((v) => g.reshape(v, [-1])), 0));
  const moments = (which: 'm' | 'v'): string[] => names.map((name, i) => g.input(momentName(which, name), 'float32', shapes[i]!));
  const next = adamwUpdate(g, { param: flat([...names]), m: flat(moments('m')), v: flat(moments('v')) }, flat(names.map(gradOf)), factors, hyper);
  const unflatten = (value: string, outputName: (name: string) => string): void => {
    const parts = names.length === 1 ? [value] : g.split(value, sizes, 0);
    parts.forEach((part, i) => g.output(outputName(names[i]!), g.reshape(part, shapes[i]!)));
  };
  unflatten(next.param, (name) => `after.${name}`);
  unflatten(next.m, (name) => nextMomentName('m', name));
  unflatten(next.v, (name) => nextMomentName('v', name));
}

function requireTensor(weights: StateDict, key: string, shape: number[]): Tensor {
  const t = weights.get(key);
  if (!t) throw new UserError(`LoRA factor "${key}" is missing (initialise LoRA before building the train graph)`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new UserError(`LoRA factor "${key}" has shape [${t.shape}], expected [${shape}]`);
  }
  return t;
}

/** Turns an initializer into a graph input of the same name (its value is then fed every step). */
function promoteToInput(g: Graph, name: string): void {
  if (!g.initializers.delete(name)) throw new Error(`"${name}" is not an initializer`);
  g.inputs.push(name);
}
