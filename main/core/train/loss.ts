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

/** The structure loss of one output: a scalar, the mean over batch and channels. */
export function structureLoss(g: Graph, logits32: string, mask32: string, variant: LossVariant = 'official'): string {
  return g.scope('structure_loss', () => {
    // Sums over whole images in float32 lose ~√N·ε; the loss is cheap, so it runs in float64.
    const logits = g.op('Cast', [logits32], { to: 11 });
    const mask = g.op('Cast', [mask32], { to: 11 });
    const f64 = (v: number): string => g.constant(Float64Array.of(v), [], 'float64', `float64(${v})`, true);
    // The 31×31 box mean (zeros outside counted, as count_include_pad) as a 31×1 then a 1×31 mean:
    // the same sums in 62 additions per pixel instead of 961 (the one 31×31 pool took a quarter of
    // a hiera_t train step)
    const columns = g.op('AveragePool', [mask32], { kernel_shape: [31, 1], strides: [1, 1], pads: [15, 0, 15, 0], count_include_pad: 1 });
    const pooled = g.op('AveragePool', [columns], { kernel_shape: [1, 31], strides: [1, 1], pads: [0, 15, 0, 15], count_include_pad: 1 });
    const weight = g.op('Cast', [g.add(g.scalar(1), g.mul(g.scalar(5), g.op('Abs', [g.sub(pooled, mask32)])))], { to: 11 });
    const sumHW = (v: string): string => g.op('ReduceSum', [v, g.ints([2, 3])], { keepdims: 0 });
    const bce = bceWithLogits(g, logits, mask, f64(1));
    const bceTerm =
      variant === 'official'
        ? g.op('ReduceMean', [bce], { keepdims: 0 })
        : g.div(sumHW(g.mul(weight, bce)), sumHW(weight));
    const p = g.op('Sigmoid', [logits]);
    const inter = sumHW(g.mul(g.mul(p, mask), weight));
    const union = sumHW(g.mul(g.add(p, mask), weight));
    const one = f64(1);
    const wiou = g.sub(one, g.div(g.add(inter, one), g.add(g.sub(union, inter), one)));
    return g.op('Cast', [g.op('ReduceMean', [g.add(bceTerm, wiou)], { keepdims: 0 })], { to: 1 });
  });
}
