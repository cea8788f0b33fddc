/**
 * Layers as compositions of primitive ops (never ops themselves, so autodiff needs no rule for
 * them). Parameters are looked up by their official key names and become initializers of the same
 * name; derived constants (folded BatchNorm) carry the key plus an `@` suffix.
 */
import { UserError } from '../errors.ts';
import type { StateDict, Tensor } from '../model/tensor.ts';
import type { Graph } from './ir.ts';

/** Looks weights up by key, with a clear error naming the missing key or wrong shape. */
export class Weights {
  constructor(
    readonly tensors: StateDict,
    /** names the checkpoint in errors */
    readonly origin = 'checkpoint',
  ) {}

  get(key: string, shape?: readonly number[]): Tensor {
    const t = this.tensors.get(key);
    if (!t) throw new UserError(`${this.origin}: missing weight "${key}"`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new UserError(`${this.origin}: weight "${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    return t;
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }
}

/**
 * Weights made up on request with the asked shape (benchmarks and structural tests): seeded, so the
 * same configuration gives the same weights (and the same cache key). The default ('small') is
 * Normal(0, 0.02)-like for every weight and BatchNorm running variances in [0.5, 1.5]: fine for
 * timing, but the signal fades through the network (norm scales of 0.02), so the logits are
 * nearly constant. 'signal' keeps it alive, as a trained network does: matrices and kernels with
 * standard deviation 1/√fan-in, LayerNorm and BatchNorm scales in [0.8, 1.2], biases, embeddings
 * and the adapters' output layers small — what a numerical comparison (int8 against float32)
 * needs to mean something.
 */
export type RandomInit = 'small' | 'signal';

export class RandomWeights extends Weights {
  private state: number;

  constructor(
    readonly seed = 1,
    readonly init: RandomInit = 'small',
  ) {
    super(new Map(), 'random weights');
    this.state = seed >>> 0 || 1;
  }

  /** What identifies these weights (the engine's cache key). */
  get identity(): string {
    return this.init === 'small' ? `random-seed-${this.seed}` : `random-${this.init}-seed-${this.seed}`;
  }

  /** Fills `out` with xorshift32 uniforms mapped to [lo, lo + span) (fast and deterministic; quality is irrelevant for weights). */
  private fill(out: Float32Array, lo: number, span: number): void {
    let x = this.state;
    const scale = span / 4294967296;
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = lo + (x >>> 0) * scale;
    }
    this.state = x >>> 0 || 1;
  }

  /** Uniform with mean 0 and standard deviation `std`. */
  private fillStd(out: Float32Array, std: number): void {
    const half = std * Math.sqrt(3);
    this.fill(out, -half, 2 * half);
  }

  override get(key: string, shape?: readonly number[]): Tensor {
    const existing = this.tensors.get(key);
    if (existing) return super.get(key, shape);
    if (!shape) throw new Error(`random weights: "${key}" was requested without a shape`);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (key.endsWith('running_var')) this.fill(data, 0.5, 1);
    else if (key.endsWith('running_mean')) this.fill(data, -0.05, 0.1);
    // an adapter's output Linear starts small, as LoRA-style adapters do: the adapter reads the
    // un-normalised stream and adds to it, so a full-size one would grow it by a factor per block
    else if (this.init === 'signal' && /prompt_learn\.2\.weight$/.test(key)) this.fillStd(data, 0.02);
    else if (this.init === 'signal' && shape.length >= 2 && key.endsWith('.weight')) this.fillStd(data, 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)));
    else if (this.init === 'signal' && shape.length === 1 && key.endsWith('.weight')) this.fill(data, 0.8, 0.4);
    else this.fillStd(data, 0.02);
    const t = { shape: [...shape], data };
    this.tensors.set(key, t);
    return t;
  }
}

/**
 * y = x Wᵀ + b over the last axis, as one Gemm reading PyTorch's (out, in) weight as stored
 * (transB): ONNX Runtime prepacks a constant weight once, without a transposed copy, and the
 * backward pass reads the same stored weight (Gemm's VJP). Inputs of rank > 2 are flattened to
 * (rows, in) around it. With `bias: false` the bias is left for the caller to add (see linearBias).
 */
export function linear(g: Graph, w: Weights, x: string, prefix: string, inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}): string {
  const weight = g.param(`${prefix}.weight`, w.get(`${prefix}.weight`, [outFeatures, inFeatures]));
  const shape = g.shape(x);
  const inner = shape.slice(1, -1);
  if (inner.some((d) => typeof d !== 'number')) throw new Error(`linear ${prefix}: only the first axis may be symbolic, got [${shape.join(', ')}]`);
  const flat = shape.length > 2 ? g.reshape(x, [-1, inFeatures]) : x;
  const inputs = [flat, weight];
  if (opts.bias !== false) inputs.push(linearBias(g, w, prefix, outFeatures));
  const y = g.op('Gemm', inputs, { transB: 1 });
  return shape.length > 2 ? g.reshape(y, [-1, ...(inner as number[]), outFeatures]) : y;
}

/** The bias of Linear `prefix` as a graph value. */
export function linearBias(g: Graph, w: Weights, prefix: string, outFeatures: number): string {
  return g.param(`${prefix}.bias`, w.get(`${prefix}.bias`, [outFeatures]));
}

export function layerNorm(g: Graph, w: Weights, x: string, prefix: string, dim: number, epsilon: number): string {
  const scale = g.param(`${prefix}.weight`, w.get(`${prefix}.weight`, [dim]));
  const bias = g.param(`${prefix}.bias`, w.get(`${prefix}.bias`, [dim]));
  return g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon });
}

export interface Conv2dOptions {
  stride?: number;
  /** [padH, padW] */
  pad?: [number, number];
  dilation?: number;
}

function convAttrs(weightShape: readonly number[], o: Conv2dOptions): Record<string, number[]> {
  const [ph, pw] = o.pad ?? [0, 0];
  const s = o.stride ?? 1;
  const d = o.dilation ?? 1;
  return { kernel_shape: [weightShape[2]!, weightShape[3]!], strides: [s, s], pads: [ph, pw, ph, pw], dilations: [d, d] };
}

/** Conv2d from a checkpoint's `${prefix}.weight` (and `.bias` when `bias`). */
export function conv2d(g: Graph, w: Weights, x: string, prefix: string, shape: [number, number, number, number], o: Conv2dOptions & { bias: boolean }): string {
  const weight = g.param(`${prefix}.weight`, w.get(`${prefix}.weight`, shape));
  const inputs = [x, weight];
  if (o.bias) inputs.push(g.param(`${prefix}.bias`, w.get(`${prefix}.bias`, [shape[0]])));
  return g.op('Conv', inputs, convAttrs(shape, o));
}

export const BN_EPSILON = 1e-5;

/**
 * Conv2d (no bias) followed by eval-mode BatchNorm2d. With `fold` the BatchNorm is folded into the
 * convolution's weight and bias (inference); without it, an explicit BatchNormalization op keeps
 * the official parameters as initializers (the path a training graph differentiates).
 */
export function convBn(
  g: Graph,
  w: Weights,
  x: string,
  convPrefix: string,
  bnPrefix: string,
  shape: [number, number, number, number],
  o: Conv2dOptions & { fold: boolean },
): string {
  const out = shape[0];
  const weight = w.get(`${convPrefix}.weight`, shape);
  const gamma = w.get(`${bnPrefix}.weight`, [out]);
  const beta = w.get(`${bnPrefix}.bias`, [out]);
  const mean = w.get(`${bnPrefix}.running_mean`, [out]);
  const variance = w.get(`${bnPrefix}.running_var`, [out]);
  if (!o.fold) {
    const y = g.op('Conv', [x, g.param(`${convPrefix}.weight`, weight)], convAttrs(shape, o));
    return g.op('BatchNormalization', [y, g.param(`${bnPrefix}.weight`, gamma), g.param(`${bnPrefix}.bias`, beta), g.param(`${bnPrefix}.running_mean`, mean), g.param(`${bnPrefix}.running_var`, variance)], { epsilon: BN_EPSILON });
  }
  const per = weight.data.length / out;
  const src = weight.data;
  const folded = new Float32Array(src.length);
  const bias = new Float32Array(out);
  for (let c = 0; c < out; c++) {
    const s = gamma.data[c]! / Math.sqrt(variance.data[c]! + BN_EPSILON);
    folded.set(src.subarray(c * per, (c + 1) * per), c * per);
    const row = folded.subarray(c * per, (c + 1) * per);
    for (let k = 0; k < per; k++) row[k]! *= s;
    bias[c] = beta.data[c]! - mean.data[c]! * s;
  }
  const fw = g.constant(folded, [...shape], 'float32', `${convPrefix}.weight@bnfold`);
  const fb = g.constant(bias, [out], 'float32', `${bnPrefix}.bias@bnfold`);
  return g.op('Conv', [x, fw, fb], convAttrs(shape, o));
}

/** Bilinear resize of an NCHW map by an integer factor (PyTorch's interpolate semantics). */
export function upsampleBilinear(g: Graph, x: string, factor: number, alignCorners: boolean): string {
  const scales = g.constant(Float32Array.of(1, 1, factor, factor), [4], 'float32', `scales[1,1,${factor},${factor}]`, true);
  return g.op('Resize', [x, '', scales], { mode: 'linear', coordinate_transformation_mode: alignCorners ? 'align_corners' : 'half_pixel' });
}
