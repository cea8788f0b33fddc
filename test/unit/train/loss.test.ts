/**
 * The structure-loss graph (loss.ts) against an independent float64 CPU transcription of
 * model.md's formula, for both variants, and its gradient w.r.t. the logits (autodiff.ts)
 * against central finite differences of that CPU loss.
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/core/onnx/autodiff.ts';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { structureLoss, type LossVariant } from '../../../main/core/train/loss.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

type Shape4 = [number, number, number, number];

/** w = 1 + 5·|avgpool31(mask, stride 1, pad 15, count_include_pad) − mask|, in float64. */
function boundaryWeights(mask: Float32Array, [n, c, h, w]: Shape4): Float64Array {
  const out = new Float64Array(mask.length);
  const r = 15;
  for (let p = 0; p < n * c; p++) {
    const base = p * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) {
          for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) sum += mask[base + yy * w + xx]!;
        }
        // count_include_pad: the divisor is always the full 31×31 window
        const pooled = sum / (31 * 31);
        out[base + y * w + x] = 1 + 5 * Math.abs(pooled - mask[base + y * w + x]!);
      }
    }
  }
  return out;
}

/** The loss given precomputed weights (they depend on the mask only), all float64. */
function cpuLoss(logits: ArrayLike<number>, mask: Float32Array, weights: Float64Array, [n, c, h, w]: Shape4, variant: LossVariant): number {
  const plane = h * w;
  const bceOf = (x: number, m: number): number => Math.max(x, 0) - x * m + Math.log1p(Math.exp(-Math.abs(x)));
  let bceAll = 0;
  for (let i = 0; i < logits.length; i++) bceAll += bceOf(logits[i]!, mask[i]!);
  const bceMean = bceAll / logits.length;
  let total = 0;
  for (let p = 0; p < n * c; p++) {
    let inter = 0;
    let union = 0;
    let wBce = 0;
    let wSum = 0;
    for (let i = p * plane; i < (p + 1) * plane; i++) {
      const x = logits[i]!;
      const m = mask[i]!;
      const wt = weights[i]!;
      const prob = 1 / (1 + Math.exp(-x));
      inter += prob * m * wt;
      union += (prob + m) * wt;
      wBce += wt * bceOf(x, m);
      wSum += wt;
    }
    const wiou = 1 - (inter + 1) / (union - inter + 1);
    const bce = variant === 'official' ? bceMean : wBce / wSum;
    total += bce + wiou;
  }
  return total / (n * c);
}

/** Soft masks with a blob (so the boundary weights vary) plus some noise-level softness. */
function randomCase(shape: Shape4, seed: number): { logits: Float32Array; mask: Float32Array } {
  const [n, c, h, w] = shape;
  const random = mulberry32(seed);
  const size = n * c * h * w;
  const logits = new Float32Array(size);
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) logits[i] = (random() * 2 - 1) * 4;
  for (let p = 0; p < n * c; p++) {
    const cy = h * (0.3 + 0.4 * random());
    const cx = w * (0.3 + 0.4 * random());
    const radius = Math.min(h, w) * (0.15 + 0.2 * random());
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inside = Math.hypot(y - cy, x - cx) < radius ? 1 : 0;
        // soft values where bicubic resizing would leave them, hard elsewhere
        mask[p * h * w + y * w + x] = random() < 0.1 ? random() : inside;
      }
    }
  }
  return { logits, mask };
}

async function runLossGraph(shape: Shape4, variant: LossVariant, logits: Float32Array, mask: Float32Array) {
  const g = new Graph();
  const x = g.input('logits', 'float32', shape);
  const m = g.input('mask', 'float32', shape);
  const loss = structureLoss(g, x, m, variant);
  const grad = gradients(g, loss, [x]).get(x);
  if (!grad) throw new Error('no gradient for the logits');
  g.output('loss', loss);
  g.output('grad', grad);
  const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    const r = await session.run({ logits: new ort.Tensor('float32', logits, shape), mask: new ort.Tensor('float32', mask, shape) });
    return { loss: (r.loss!.data as Float32Array)[0]!, grad: r.grad!.data as Float32Array };
  } finally {
    await session.release();
  }
}

const SHAPES: Shape4[] = [
  [2, 1, 40, 40],
  [1, 3, 32, 32],
];
const LOSS_REL = 1e-6;
/** float32 gradient (the graph's backward ends in float32) vs float64 finite differences, relative to the largest component */
const GRAD_REL = 2e-6;

describe('structure loss graph', () => {
  for (const variant of ['official', 'weighted-bce'] as const) {
    for (const shape of SHAPES) {
      it(`${variant}, ${shape.join('×')}: loss within ${LOSS_REL} relative and ∂loss/∂logits within ${GRAD_REL} of finite differences`, async () => {
        const { logits, mask } = randomCase(shape, shape[1] * 100 + (variant === 'official' ? 1 : 2));
        const weights = boundaryWeights(mask, shape);
        const expected = cpuLoss(logits, mask, weights, shape, variant);
        const ours = await runLossGraph(shape, variant, logits, mask);
        expect(Math.abs(ours.loss - expected) / Math.abs(expected), `loss ${ours.loss} vs ${expected}`).toBeLessThan(LOSS_REL);

        const x = Float64Array.from(logits);
        const h = 1e-4;
        let worst = 0;
        let largest = 0;
        const fd = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const saved = x[i]!;
          x[i] = saved + h;
          const up = cpuLoss(x, mask, weights, shape, variant);
          x[i] = saved - h;
          const down = cpuLoss(x, mask, weights, shape, variant);
          x[i] = saved;
          fd[i] = (up - down) / (2 * h);
          largest = Math.max(largest, Math.abs(fd[i]!));
        }
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(ours.grad[i]! - fd[i]!));
        console.log(`  ${variant} ${shape.join('×')}: loss ${ours.loss} (CPU ${expected}), gradient max error ${(worst / largest).toExponential(2)} of max |g| ${largest.toExponential(2)}`);
        expect(largest).toBeGreaterThan(0);
        expect(worst / largest).toBeLessThan(GRAD_REL);
      });
    }
  }

  it('the two variants differ (the weighting reaches the BCE term only in weighted-bce)', async () => {
    const shape: Shape4 = [2, 1, 40, 40];
    const { logits, mask } = randomCase(shape, 7);
    const a = await runLossGraph(shape, 'official', logits, mask);
    const b = await runLossGraph(shape, 'weighted-bce', logits, mask);
    expect(Math.abs(a.loss - b.loss)).toBeGreaterThan(1e-4);
  });
});
