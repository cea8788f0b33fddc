/**
 * What the segmentation job needs from a model: NCHW float32 in, the `out` logits NCHW out.
 * The job never sees ONNX, checkpoints or devices; adapters below turn an engine session into one.
 */

export interface SliceModel {
  /** [H, W] the model takes */
  readonly inputSize: readonly [number, number];
  /** channels of `out`: 1 = binary, 3 = BraTS WT, TC, ET */
  readonly outChannels: number;
  /** the execution provider that runs it ('cpu', 'cuda', …) */
  readonly provider: string;
  /**
   * Logits n×C×H×W for the first n items of `batch` (n×3×H×W). The batch may be transferred to
   * another thread: the caller must not touch it afterwards.
   */
  run(batch: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

import type { TensorData } from '../onnx/session.ts';

/** The engine's session client as the job uses it (main/core/onnx/session.ts offers this shape). */
export interface SessionLike {
  readonly provider: string;
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
  dispose(): Promise<void> | void;
}

export interface SessionModelOptions {
  inputSize: readonly [number, number];
  outChannels: number;
  inputName?: string;
  outputName?: string;
}

/** A SliceModel over any session that maps named NCHW tensors to named NCHW tensors. */
export function sliceModelFromSession(session: SessionLike, opts: SessionModelOptions): SliceModel {
  const [h, w] = opts.inputSize;
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'out';
  return {
    inputSize: opts.inputSize,
    outChannels: opts.outChannels,
    get provider() {
      return session.provider;
    },
    async run(batch, n) {
      const size = n * 3 * h * w;
      if (batch.length < size) throw new RangeError(`batch holds ${batch.length} values, ${n}×3×${h}×${w} needs ${size}`);
      const outputs = await session.run({ [inputName]: { dims: [n, 3, h, w], data: batch.length === size ? batch : batch.subarray(0, size) } });
      const out = outputs[outputName];
      if (!out) throw new Error(`the model gave no "${outputName}" output (it gave ${Object.keys(outputs).join(', ')})`);
      const expected = [n, opts.outChannels, h, w];
      if (out.dims.length !== 4 || out.dims.some((d, i) => d !== expected[i])) {
        throw new Error(`the model's "${outputName}" has shape [${out.dims.join(', ')}], expected [${expected.join(', ')}]`);
      }
      return out.data;
    },
    dispose: () => session.dispose(),
  };
}
