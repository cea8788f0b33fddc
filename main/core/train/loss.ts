/**
 * SAM2-UNet's structure loss as graph nodes (model.md). The official code passes `reduce='none'` to
 * binary_cross_entropy_with_logits, which PyTorch reads as the legacy reduce=True: its BCE term is
 * the plain mean over the whole batch, and the per-pixel weights only shape the IoU term. That is
 * the default here; the intended weighted BCE is the 'weighted-bce' variant, never a silent change.
 */
import type { Graph } from '../onnx/ir.ts';

export type LossVariant = 'official' | 'weighted-bce';

export const LOSS_VARIANTS: readonly LossVariant[] = ['official', 'weighted-bce'];

/** max(x, 0) − x·m + log(1 + e^−|x|): the numerically stable BCE with logits, per element. */
function bceWithLogits(g: Graph, logits: string, mask: string, one: string): string {
  const softplus = g.op('Log', [g.add(one, g.op('Exp', [g.op('Neg', [g.op('Abs', [logits])])]))]);
  return g.add(g.sub(g.relu(logits), g.mul(logits, mask)), softplus);
}

/**
 * The mean over a (2·radius + 1) window along `axis`, zeros beyond the edges counted (avg_pool2d's
 * count_include_pad), as the difference of two running sums: two passes whatever the window. The
 * 31×31 AveragePool it replaces took a quarter of a hiera_t train step (961 additions per pixel);
 * in float64 the running sums lose nothing.
 */
function boxMean(g: Graph, x: string, axis: number, radius: number): string {
  const shape = g.shape(x);
  const n = shape[axis] as number;
  const pads = new Array<number>(2 * shape.length).fill(0);
  pads[axis] = radius + 1;
  pads[axis + shape.length] = radius;
  const sums = g.op('CumSum', [g.pad(x, pads), g.ints([axis])]);
  const window = 2 * radius + 1;
  const inside = g.sub(g.slice(sums, [window], [window + n], [axis]), g.slice(sums, [0], [n], [axis]));
  return g.mul(inside, g.constant(Float64Array.of(1 / window), [], 'float64', `float64(${1 / window})`, true));
}

/** The structure loss of one output: a scalar, the mean over batch and channels. */
export function structureLoss(g: Graph, logits: string, mask: string, variant: LossVariant = 'official'): string {
  return g.scope('structure_loss', () => {
    // Per-pixel terms in float32 (relative error ~1e-7 each), every sum over whole images in
    // float64: float32 sums over N pixels lose ~√N·ε, and the float64 sums cost one Cast each,
    // where float64 per-pixel exp/log/sigmoid and their gradients cost 4–8 % of a step.
    const f64 = (v: number): string => g.constant(Float64Array.of(v), [], 'float64', `float64(${v})`, true);
    const one = f64(1);
    const toF64 = (v: string): string => g.op('Cast', [v], { to: 11 });
    const sumHW = (v: string): string => g.op('ReduceSum', [toF64(v), g.ints([2, 3])], { keepdims: 0 });
    const weight = boundaryWeight(g, mask);
    const bce = bceWithLogits(g, logits, mask, g.scalar(1));
    const bceTerm =
      variant === 'official'
        ? g.op('ReduceMean', [toF64(bce)], { keepdims: 0 })
        : g.div(sumHW(g.mul(weight, bce)), sumHW(weight));
    const p = g.op('Sigmoid', [logits]);
    const inter = sumHW(g.mul(g.mul(p, mask), weight));
    const union = sumHW(g.mul(g.add(p, mask), weight));
    const wiou = g.sub(one, g.div(g.add(inter, one), g.add(g.sub(union, inter), one)));
    return g.op('Cast', [g.op('ReduceMean', [g.add(bceTerm, wiou)], { keepdims: 0 })], { to: 1 });
  });
}

/**
 * w = 1 + 5·|avgpool31(mask) − mask| (float32; the box sums in float64). It depends on the mask
 * only, so the three losses of a step share one (ONNX Runtime merges the identical subgraphs).
 */
function boundaryWeight(g: Graph, mask: string): string {
  const mask64 = g.op('Cast', [mask], { to: 11 });
  const pooled = boxMean(g, boxMean(g, mask64, 2, 15), 3, 15);
  const deviation = g.op('Cast', [g.op('Abs', [g.sub(pooled, mask64)])], { to: 1 });
  return g.add(g.scalar(1), g.mul(g.scalar(5), deviation));
}
