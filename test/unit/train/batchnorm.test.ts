/**
 * Train-mode BatchNorm (batchnorm.ts): the forward pass and the running-statistics update
 * (momentum 0.1, unbiased variance) against a float64 CPU transcription of torch.nn.BatchNorm2d,
 * and its custom VJP (dx, dγ, dβ through gradients()) against central finite differences of it.
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/core/onnx/autodiff.ts';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { BN_MOMENTUM, batchNormTrain } from '../../../main/core/train/batchnorm.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

const EPS = 1e-5;
type Shape4 = [number, number, number, number];

interface Case {
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
  /** the cotangent: loss = Σ r ⊙ y */
  r: Float32Array;
}

function makeCase([n, c, h, w]: Shape4, seed: number): Case {
  const random = mulberry32(seed);
  const x = new Float32Array(n * c * h * w);
  // per-channel offsets and scales, so the statistics are not trivially 0/1
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h * w; i++) x[(b * c + ch) * h * w + i] = (ch - 1) * 0.7 + (0.5 + ch) * (random() * 2 - 1);
    }
  }
  const vec = (lo: number, hi: number): Float32Array => Float32Array.from({ length: c }, () => lo + (hi - lo) * random());
  return { x, gamma: vec(0.5, 1.5), beta: vec(-0.5, 0.5), runningMean: vec(-0.2, 0.2), runningVar: vec(0.5, 2), r: Float32Array.from(x, () => random() * 2 - 1) };
}

/** torch.nn.BatchNorm2d in train mode, float64. */
type CpuParams = Pick<Case, 'runningMean' | 'runningVar' | 'r'> & { gamma: ArrayLike<number>; beta: ArrayLike<number> };

function cpuBatchNorm(x: ArrayLike<number>, k: CpuParams, [n, c, h, w]: Shape4) {
  const count = n * h * w;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  const at = (b: number, ch: number, i: number): number => (b * c + ch) * h * w + i;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) s += x[at(b, ch, i)]!;
    mean[ch] = s / count;
    let q = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) q += (x[at(b, ch, i)]! - mean[ch]!) ** 2;
    variance[ch] = q / count;
  }
  const y = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const inv = 1 / Math.sqrt(variance[ch]! + EPS);
      for (let i = 0; i < h * w; i++) y[at(b, ch, i)] = (x[at(b, ch, i)]! - mean[ch]!) * inv * k.gamma[ch]! + k.beta[ch]!;
    }
  }
  const runningMean = Float64Array.from(k.runningMean, (rm, ch) => (1 - BN_MOMENTUM) * rm + BN_MOMENTUM * mean[ch]!);
  const runningVar = Float64Array.from(k.runningVar, (rv, ch) => (1 - BN_MOMENTUM) * rv + BN_MOMENTUM * variance[ch]! * (count / (count - 1)));
  return { y, runningMean, runningVar };
}

function cpuLoss(x: ArrayLike<number>, k: CpuParams, shape: Shape4): number {
  const { y } = cpuBatchNorm(x, k, shape);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += k.r[i]! * y[i]!;
  return s;
}

async function runGraph(k: Case, shape: Shape4) {
  const c = shape[1];
  const g = new Graph();
  const x = g.input('x', 'float32', shape);
  const gamma = g.input('gamma', 'float32', [c]);
  const beta = g.input('beta', 'float32', [c]);
  const rm = g.input('running_mean', 'float32', [c]);
  const rv = g.input('running_var', 'float32', [c]);
  const r = g.input('r', 'float32', shape);
  const bn = batchNormTrain(g, x, gamma, beta, rm, rv, EPS);
  const loss = g.op('ReduceSum', [g.mul(bn.y, r)], { keepdims: 0 });
  const grads = gradients(g, loss, [x, gamma, beta]);
  g.output('y', bn.y);
  g.output('new_running_mean', bn.runningMean);
  g.output('new_running_var', bn.runningVar);
  for (const [name, grad] of grads) {
    if (!grad) throw new Error(`no gradient for ${name}`);
    g.output(`d_${name}`, grad);
  }
  const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { intraOpNumThreads: 1 });
  try {
    const t = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
    const out = await session.run({ x: t(k.x, shape), gamma: t(k.gamma, [c]), beta: t(k.beta, [c]), running_mean: t(k.runningMean, [c]), running_var: t(k.runningVar, [c]), r: t(k.r, shape) });
    return Object.fromEntries(Object.entries(out).map(([name, v]) => [name, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

function maxRel(ours: Float32Array, expected: Float64Array): number {
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(ours[i]! - expected[i]!));
    largest = Math.max(largest, Math.abs(expected[i]!));
  }
  return worst / largest;
}

/** float32 graph vs float64 reference, relative to the largest element */
const FORWARD_REL = 1e-6;
const GRAD_REL = 5e-6;

describe('train-mode BatchNorm', () => {
  const shapes: Shape4[] = [
    [3, 4, 5, 6],
    [1, 2, 7, 3], // batch 1: the statistics come from one image's pixels only
  ];
  for (const shape of shapes) {
    it(`${shape.join('×')}: y and running statistics within ${FORWARD_REL}, dx/dγ/dβ within ${GRAD_REL} of finite differences`, async () => {
      const k = makeCase(shape, shape[0] * 10 + shape[1]);
      const ours = await runGraph(k, shape);
      const expected = cpuBatchNorm(k.x, k, shape);
      expect(maxRel(ours.y!, expected.y), 'y').toBeLessThan(FORWARD_REL);
      expect(maxRel(ours.new_running_mean!, expected.runningMean), 'running_mean').toBeLessThan(FORWARD_REL);
      expect(maxRel(ours.new_running_var!, expected.runningVar), 'running_var (unbiased)').toBeLessThan(FORWARD_REL);

      const step = 1e-5;
      const fd = (values: Float64Array, evaluate: () => number): Float64Array =>
        Float64Array.from(values, (saved, i) => {
          values[i] = saved + step;
          const up = evaluate();
          values[i] = saved - step;
          const down = evaluate();
          values[i] = saved;
          return (up - down) / (2 * step);
        });
      const x = Float64Array.from(k.x);
      const gamma = Float64Array.from(k.gamma);
      const beta = Float64Array.from(k.beta);
      const withParams = (): CpuParams => ({ ...k, gamma, beta });
      const dx = fd(x, () => cpuLoss(x, k, shape));
      const dgamma = fd(gamma, () => cpuLoss(k.x, withParams(), shape));
      const dbeta = fd(beta, () => cpuLoss(k.x, withParams(), shape));
      const errors = { dx: maxRel(ours.d_x!, dx), dgamma: maxRel(ours.d_gamma!, dgamma), dbeta: maxRel(ours.d_beta!, dbeta) };
      console.log(`  ${shape.join('×')}: y ${maxRel(ours.y!, expected.y).toExponential(2)}, running_var ${maxRel(ours.new_running_var!, expected.runningVar).toExponential(2)}, dx ${errors.dx.toExponential(2)}, dγ ${errors.dgamma.toExponential(2)}, dβ ${errors.dbeta.toExponential(2)}`);
      for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(GRAD_REL);
    });
  }

  it('the running variance uses the unbiased estimate (a biased one would be off by count/(count−1))', async () => {
    const shape: Shape4 = [1, 1, 2, 2];
    const k = makeCase(shape, 3);
    k.runningVar.fill(0);
    const ours = await runGraph(k, shape);
    const expected = cpuBatchNorm(k.x, k, shape);
    // count 4: unbiased = 4/3 · biased, so a biased update would miss by 25 %
    expect(Math.abs(ours.new_running_var![0]! - expected.runningVar[0]!) / expected.runningVar[0]!).toBeLessThan(1e-6);
  });
});
