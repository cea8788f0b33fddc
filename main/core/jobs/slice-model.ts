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

import { flipPlanes } from '../model/preprocess.ts';
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

/** The values n×3×h×w items take; refuses a batch too short for them (every SliceModel's rule). */
function batchValues(batch: Float32Array, n: number, h: number, w: number): number {
  const size = n * 3 * h * w;
  if (batch.length < size) throw new RangeError(`batch holds ${batch.length} values, ${n}×3×${h}×${w} needs ${size}`);
  return size;
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
      const size = batchValues(batch, n, h, w);
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

/** The views of test-time mirroring, in the order their logits are summed: [flip x, flip y]. */
const MIRROR_VIEWS: readonly (readonly [boolean, boolean])[] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/**
 * `model` with test-time mirroring (run-settings.ts 'mirror'): each batch also runs flipped
 * left-right, front-back and both; the logits are flipped back and averaged. Logits, not
 * probabilities, are averaged so that the label rule downstream (sigmoid > threshold) and the
 * single-view path stay one code path. The views run one after another: on a CPU a batch four
 * times larger runs no faster (see jobs/segment.ts defaultBatchSize), and it would hold four
 * times the activations at once.
 */
export function mirrorAveraged(model: SliceModel): SliceModel {
  const [h, w] = model.inputSize;
  return {
    inputSize: model.inputSize,
    outChannels: model.outChannels,
    get provider() {
      return model.provider;
    },
    async run(batch, n) {
      const size = batchValues(batch, n, h, w);
      // every view gets its own copy: the inner model may transfer what it is given
      const inputs = MIRROR_VIEWS.map(([fx, fy]) => {
        const input = batch.slice(0, size);
        flipPlanes(input, n * 3, h, w, fx, fy);
        return input;
      });
      let sum: Float32Array | undefined;
      for (let v = 0; v < MIRROR_VIEWS.length; v++) {
        const [fx, fy] = MIRROR_VIEWS[v]!;
        const out = Float32Array.from(await model.run(inputs[v]!, n));
        flipPlanes(out, n * model.outChannels, h, w, fx, fy);
        if (!sum) sum = out;
        else for (let i = 0; i < sum.length; i++) sum[i]! += out[i]!;
      }
      for (let i = 0; i < sum!.length; i++) sum![i]! /= MIRROR_VIEWS.length;
      return sum!;
    },
    dispose: () => model.dispose(),
  };
}
