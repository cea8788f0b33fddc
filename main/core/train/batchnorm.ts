/**
 * BatchNorm2d in training mode, composed from primitives so autodiff differentiates it like any
 * other layer: normalisation by the batch statistics (biased variance), and running statistics
 * updated with the unbiased variance and momentum 0.1, exactly as torch.nn.BatchNorm2d does.
 */
import type { Graph } from '../onnx/ir.ts';
import { defineCustomVjp } from '../onnx/autodiff.ts';
import { staticShape } from '../onnx/ops.ts';

export const BN_MOMENTUM = 0.1;

export interface BatchNormTrainResult {
  y: string;
  runningMean: string;
  runningVar: string;
}

export function batchNormTrain(
  g: Graph,
  x: string,
  gamma: string,
  beta: string,
  runningMean: string,
  runningVar: string,
  epsilon: number,
  momentum = BN_MOMENTUM,
): BatchNormTrainResult {
  const [n, c, h, w] = staticShape(g, x) as [number, number, number, number];
  const count = n * h * w;
  const axes = g.ints([0, 2, 3]);
  const perChannel = (v: string): string => g.reshape(v, [1, c, 1, 1]);
  const mean = g.op('ReduceMean', [x, axes], { keepdims: 1 });
  const centred = g.sub(x, mean);
  const variance = g.op('ReduceMean', [g.mul(centred, centred), axes], { keepdims: 1 });
  const invStd = g.div(g.scalar(1), g.op('Sqrt', [g.add(variance, g.scalar(epsilon))]));
  const xhat = g.mul(centred, invStd);
  const y = g.add(g.mul(xhat, perChannel(gamma)), perChannel(beta));
  // PyTorch's closed form: dx = γ·σ⁻¹·(gy − mean(gy) − x̂·mean(gy·x̂)), dγ = Σ gy·x̂, dβ = Σ gy
  defineCustomVjp(g, y, {
    inputs: [x, gamma, beta],
    rule: (gy) => {
      const meanOf = (v: string): string => g.op('ReduceMean', [v, axes], { keepdims: 1 });
      const gyXhat = g.mul(gy, xhat);
      const dx = g.mul(g.mul(invStd, perChannel(gamma)), g.sub(g.sub(gy, meanOf(gy)), g.mul(xhat, meanOf(gyXhat))));
      const sum = (v: string): string => g.op('ReduceSum', [v, axes], { keepdims: 0 });
      return [dx, sum(gyXhat), sum(gy)];
    },
  });
  const keep = g.scalar(1 - momentum);
  const take = g.scalar(momentum);
  const flatMean = g.reshape(mean, [c]);
  const unbiased = g.mul(g.reshape(variance, [c]), g.scalar(count / Math.max(count - 1, 1)));
  return {
    y,
    runningMean: g.add(g.mul(runningMean, keep), g.mul(flatMean, take)),
    runningVar: g.add(g.mul(runningVar, keep), g.mul(unbiased, take)),
  };
}
