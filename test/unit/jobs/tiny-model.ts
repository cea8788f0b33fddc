/**
 * A tiny but real segmentation model for the job's tests: a 1×1 convolution on the normalised
 * FLAIR channel, built with the project's graph IR and ONNX writer and run by onnxruntime-node
 * in the engine's worker thread (SessionClient), exactly as a real checkpoint runs.
 * Output channel c is a logit that is positive where the scaled FLAIR intensity s ∈ [0, 1]
 * exceeds thresholds[c]: nested thresholds give nested regions (WT ⊇ TC ⊇ ET).
 */
import { Graph } from '../../../main/core/onnx/ir.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { SessionClient } from '../../../main/core/onnx/session.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../../main/core/model/preprocess.ts';
import { type SliceModel, sliceModelFromSession } from '../../../main/core/jobs/slice-model.ts';

export function thresholdModelBytes(thresholds: number[], [height, width]: readonly [number, number], gain = 10): Uint8Array {
  const g = new Graph();
  const x = g.input('input', 'float32', ['batch', 3, height, width]);
  const C = thresholds.length;
  const weight = new Float32Array(C * 3);
  const bias = new Float32Array(C);
  thresholds.forEach((t, c) => {
    // logit = gain·(s − t) with s = x0·std + mean (x0 is the normalised FLAIR channel)
    weight[c * 3] = gain * IMAGENET_STD[0];
    bias[c] = gain * (IMAGENET_MEAN[0] - t);
  });
  const w = g.param('w', { shape: [C, 3, 1, 1], data: weight });
  const b = g.param('b', { shape: [C], data: bias });
  g.output('out', g.op('Conv', [x, w, b], { kernel_shape: [1, 1] }));
  return joinChunks(serializeModel(g));
}

export async function thresholdModel(thresholds: number[], inputSize: [number, number]): Promise<SliceModel> {
  const session = await SessionClient.create(thresholdModelBytes(thresholds, inputSize), { device: 'cpu', threads: 1 });
  return sliceModelFromSession(session, { inputSize, outChannels: thresholds.length });
}
