/**
 * The AdamW graph nodes (adamw.ts) over several steps with a changing learning rate, against
 * adamwReference and against a literal transcription of torch.optim.AdamW's single-tensor update
 * (PyTorch 1.13–2.x `_single_tensor_adamw`, float32 tensors with Python-float scalars).
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { ADAMW_DEFAULTS, adamwReference, adamwStepFactors, adamwUpdate, type AdamWHyper } from '../../../main/core/train/adamw.ts';
import { cosineLearningRate } from '../../../main/core/train/schedule.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

const f = Math.fround;

/**
 * torch.optim.AdamW, line by line (each tensor op rounds to float32; lr, betas and the bias
 * corrections are Python floats):
 *   param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   step_size = lr / (1 - beta1 ** step); bias_correction2_sqrt = sqrt(1 - beta2 ** step)
 *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 */
function torchAdamW(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, step: number, h: AdamWHyper): void {
  const stepSize = lr / (1 - h.beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** step);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    param[i] = f(param[i]! * (1 - lr * h.weightDecay));
    m[i] = f(m[i]! + (1 - h.beta1) * f(g - m[i]!)); // lerp(start, end, w) = start + w·(end − start)
    v[i] = f(f(v[i]! * h.beta2) + f(f(g * g) * (1 - h.beta2)));
    const denom = f(f(f(Math.sqrt(v[i]!)) / bc2Sqrt) + h.eps);
    param[i] = f(param[i]! - stepSize * f(m[i]! / denom));
  }
}

function buildAdamWGraph(n: number, h: AdamWHyper): Uint8Array {
  const g = new Graph();
  const param = g.input('param', 'float32', [n]);
  const grad = g.input('grad', 'float32', [n]);
  const m = g.input('m', 'float32', [n]);
  const v = g.input('v', 'float32', [n]);
  const lr = g.input('lr', 'float32', []);
  const step = g.input('step', 'float32', []);
  const next = adamwUpdate(g, { param, m, v }, grad, adamwStepFactors(g, lr, step, h), h);
  g.output('next_param', next.param);
  g.output('next_m', next.m);
  g.output('next_v', next.v);
  return joinChunks(serializeModel(g));
}

/** Gradients of every magnitude AdamW meets, including exact zeros and values below eps. */
function gradientAt(n: number, step: number): Float32Array {
  const random = mulberry32(1000 + step);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const scale = [0, 1e-10, 1e-8, 1e-5, 1e-3, 1, 10][i % 7]!;
    out[i] = (random() * 2 - 1) * scale;
  }
  return out;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i]!)), 0);
/** max |a − b| / scale: a moment is a sum of two terms that may cancel, so its error is relative to their size */
const maxScaledDiff = (a: Float32Array, b: Float32Array, scale: Float64Array): number =>
  a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i]!) / Math.max(scale[i]!, 1e-30)), 0);

const PARAM_ABS = 1e-7;
/** moments relative to the size of their terms (β·previous + (1 − β)·new): v spans 1e-20 … 100 */
const MOMENT_REL = 1e-6;

describe('AdamW graph nodes', () => {
  const hypers: [string, AdamWHyper][] = [
    ['official defaults', ADAMW_DEFAULTS],
    ['other betas and decay', { beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 1e-2 }],
  ];
  for (const [label, h] of hypers) {
    it(`${label}: 6 steps with a cosine learning rate match adamwReference and torch's rule within ${PARAM_ABS}`, async () => {
      const n = 7 * 40;
      const session = await ort.InferenceSession.create(buildAdamWGraph(n, h), { intraOpNumThreads: 1 });
      const random = mulberry32(5);
      // |w| < 0.25 like trained weights: there a float32 ulp is ≤ 3e-8, so 1e-7 allows a few roundings per trajectory
      const start = Float32Array.from({ length: n }, () => (random() - 0.5) / 2);
      // the graph's own trajectory, adamwReference's and torch's, each fed back into itself
      type State = { param: Float32Array; m: Float32Array; v: Float32Array };
      let ours: State = { param: start, m: new Float32Array(n), v: new Float32Array(n) };
      let reference: State = { param: start, m: new Float32Array(n), v: new Float32Array(n) };
      // Σ of |terms| over the whole history: the magnitude trajectory rounding errors are relative to
      const mHistory = new Float64Array(n);
      const vHistory = new Float64Array(n);
      const torch = { param: Float32Array.from(start), m: new Float32Array(n), v: new Float32Array(n) };
      try {
        for (let step = 1; step <= 6; step++) {
          const lr = f(cosineLearningRate(step - 1, 6, 1e-3));
          const grad = gradientAt(n, step);
          const r = await session.run({
            param: new ort.Tensor('float32', ours.param, [n]),
            grad: new ort.Tensor('float32', grad, [n]),
            m: new ort.Tensor('float32', ours.m, [n]),
            v: new ort.Tensor('float32', ours.v, [n]),
            lr: new ort.Tensor('float32', Float32Array.of(lr), []),
            step: new ort.Tensor('float32', Float32Array.of(step), []),
          });
          const mScale = Float64Array.from(grad, (g, i) => h.beta1 * Math.abs(ours.m[i]!) + (1 - h.beta1) * Math.abs(g));
          const vScale = Float64Array.from(grad, (g, i) => h.beta2 * ours.v[i]! + (1 - h.beta2) * g * g);
          for (let i = 0; i < n; i++) {
            mHistory[i] = h.beta1 * mHistory[i]! + (1 - h.beta1) * Math.abs(grad[i]!);
            vHistory[i] = h.beta2 * vHistory[i]! + (1 - h.beta2) * grad[i]! ** 2;
          }
          const next = { param: r.next_param!.data as Float32Array, m: r.next_m!.data as Float32Array, v: r.next_v!.data as Float32Array };
          // one step from the same state
          const same = adamwReference(ours.param, grad, ours.m, ours.v, lr, step, h);
          expect(maxAbsDiff(next.param, same.param), `step ${step}: param vs adamwReference`).toBeLessThan(PARAM_ABS);
          expect(maxScaledDiff(next.m, same.m, mScale), `step ${step}: m`).toBeLessThan(MOMENT_REL);
          expect(maxScaledDiff(next.v, same.v, vScale), `step ${step}: v`).toBeLessThan(MOMENT_REL);
          // whole trajectories
          reference = adamwReference(reference.param, grad, reference.m, reference.v, lr, step, h);
          torchAdamW(torch.param, grad, torch.m, torch.v, lr, step, h);
          ours = next;
          const vsRef = maxAbsDiff(ours.param, reference.param);
          const vsTorch = maxAbsDiff(ours.param, torch.param);
          const refVsTorch = maxAbsDiff(reference.param, torch.param);
          if (step === 6) console.log(`  ${label}: after 6 steps, graph vs adamwReference ${vsRef.toExponential(2)}, graph vs torch ${vsTorch.toExponential(2)}, adamwReference vs torch ${refVsTorch.toExponential(2)}`);
          expect(vsRef, `step ${step}: trajectory vs adamwReference`).toBeLessThan(PARAM_ABS);
          expect(vsTorch, `step ${step}: trajectory vs torch`).toBeLessThan(PARAM_ABS);
          expect(refVsTorch, `step ${step}: adamwReference vs torch`).toBeLessThan(PARAM_ABS);
          expect(maxScaledDiff(ours.m, torch.m, mHistory), `step ${step}: m vs torch`).toBeLessThan(MOMENT_REL);
          expect(maxScaledDiff(ours.v, torch.v, vHistory), `step ${step}: v vs torch`).toBeLessThan(MOMENT_REL);
        }
        // the parameters did move: a test of a no-op update would pass the comparisons above too
        expect(maxAbsDiff(ours.param, start)).toBeGreaterThan(1e-3);
      } finally {
        await session.release();
      }
    });
  }
});
