/**
 * AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias correction), emitted as
 * graph nodes so the whole optimiser step runs inside the train-step session. `step` (1-based)
 * and `lr` are graph inputs, so one graph serves every step of a cosine schedule.
 */
import type { Graph } from '../onnx/ir.ts';

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 5e-4 };

export interface AdamWValues {
  param: string;
  m: string;
  v: string;
}

/** Shared per-step factors: lr/(1 − β1^t) and 1/√(1 − β2^t). */
export function adamwStepFactors(g: Graph, lr: string, step: string, h: AdamWHyper): { stepSize: string; invSqrtBc2: string; decay: string } {
  const one = g.scalar(1);
  const bc1 = g.sub(one, g.op('Pow', [g.scalar(h.beta1), step]));
  const bc2 = g.sub(one, g.op('Pow', [g.scalar(h.beta2), step]));
  return {
    stepSize: g.div(lr, bc1),
    invSqrtBc2: g.div(one, g.op('Sqrt', [bc2])),
    decay: g.sub(one, g.mul(lr, g.scalar(h.weightDecay))),
  };
}

export function adamwUpdate(
  g: Graph,
  current: AdamWValues,
  grad: string,
  factors: ReturnType<typeof adamwStepFactors>,
  h: AdamWHyper,
): AdamWValues {
  const decayed = g.mul(current.param, factors.decay);
  const m = g.add(g.mul(current.m, g.scalar(h.beta1)), g.mul(grad, g.scalar(1 - h.beta1)));
  const v = g.add(g.mul(current.v, g.scalar(h.beta2)), g.mul(g.mul(grad, grad), g.scalar(1 - h.beta2)));
  const denom = g.add(g.mul(g.op('Sqrt', [v]), factors.invSqrtBc2), g.scalar(h.eps));
  const param = g.sub(decayed, g.mul(factors.stepSize, g.div(m, denom)));
  return { param, m, v };
}

/** The same update on the CPU in float64, for checking the graph and for resuming bookkeeping. */
export function adamwReference(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  step: number,
  h: AdamWHyper = ADAMW_DEFAULTS,
): { param: Float32Array; m: Float32Array; v: Float32Array } {
  const out = { param: new Float32Array(param.length), m: new Float32Array(m.length), v: new Float32Array(v.length) };
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    const mi = h.beta1 * m[i]! + (1 - h.beta1) * g;
    const vi = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
    const denom = Math.sqrt(vi) / Math.sqrt(bc2) + h.eps;
    out.param[i] = param[i]! * (1 - lr * h.weightDecay) - (lr / bc1) * (mi / denom);
    out.m[i] = mi;
    out.v[i] = vi;
  }
  return out;
}
