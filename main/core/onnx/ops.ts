/**
 * The op table: one row per primitive op, holding everything the op means: its ONNX attribute
 * schema, shape rule, FLOP count and vector-Jacobian rule side by side, in the spirit of PyTorch's
 * derivatives.yaml and JAX's primitive rules. The row's `vjp` is required: a rule, or `'zero'`
 * (no gradient flows: comparisons, Sign), or `'inference-only'` (fused and integer ops; the
 * training compiler refuses to differentiate through them, naming the op and node), so the
 * compiler refuses an op added without saying how it differentiates. Semantics are ONNX opset 20's.
 *
 * The rules build the backward pass as more nodes of the same graph through `GraphBuilder`, the
 * part of ir.ts's Graph they use; the table names that interface rather than the class, so the
 * graph can look up shape rules here without an import cycle. Backward graphs need static
 * shapes: training graphs are built for a fixed batch size.
 */
import { concreteDim, divDims, mulDims, numelOf, sameDim, shapeString, type Dim, type InitializerData, type Shape, type TensorType, type ValueInfo } from './shape.ts';

export type AttrType = 'int' | 'float' | 'ints' | 'floats' | 'string';
export type AttrValue = number | number[] | string;
export type Attrs = Record<string, AttrValue>;

/** One application of an op of the table. */
export interface Node {
  op: OpName;
  inputs: string[];
  outputs: string[];
  attrs: Attrs;
}

/** What shape and VJP rules do with their graph (ir.ts's Graph implements it). */
export interface GraphBuilder {
  info(name: string): ValueInfo;
  shape(name: string): Shape;
  /** the int64 values of a constant, or undefined if `name` is not one */
  constantInts(name: string): number[] | undefined;
  constantFloats(name: string): Float32Array | undefined;
  constant(data: InitializerData, shape: number[], dtype?: TensorType, name?: string, reuse?: boolean): string;
  scalar(value: number): string;
  ints(values: readonly number[]): string;
  node(op: OpName, inputs: string[], attrs?: Attrs, outputCount?: number, names?: string[]): string[];
  op(op: OpName, inputs: string[], attrs?: Attrs, name?: string): string;
  add(a: string, b: string): string;
  sub(a: string, b: string): string;
  mul(a: string, b: string): string;
  div(a: string, b: string): string;
  matmul(a: string, b: string): string;
  transpose(x: string, perm: number[]): string;
  reshape(x: string, shape: readonly number[]): string;
  concat(xs: string[], axis: number): string;
  slice(x: string, starts: number[], ends: number[], axes: number[]): string;
  pad(x: string, pads: number[]): string;
  split(x: string, sizes: number[], axis: number): string[];
}

export interface InferContext {
  op: OpName;
  /** undefined for an omitted optional input ('') */
  inputs: (ValueInfo | undefined)[];
  attrs: Attrs;
  graph: GraphBuilder;
  outputCount: number;
}

export interface OutputType {
  dtype: TensorType;
  shape: Shape;
}

export interface VjpArgs {
  g: GraphBuilder;
  node: Node;
  /** the node's input value names ('' for an omitted optional input) */
  x: string[];
  /** the node's output value names */
  y: string[];
  /** gradient of the loss with respect to each output; undefined where no gradient flows */
  gy: (string | undefined)[];
  /** which inputs need a gradient */
  needs: boolean[];
}

/** One gradient per input, undefined where none is needed or none exists. */
export type Grads = (string | undefined)[];

/**
 * The rules in the table annotate their `Grads` return type: the table's type (and so `OpName`)
 * is then known without checking the rules' bodies, which themselves name ops.
 */
export type VjpRule = (a: VjpArgs) => Grads;

/**
 * How an op differentiates: its rule; `'zero'` when no gradient flows through it (piecewise
 * constant or boolean outputs); `'inference-only'` when it must not appear on a differentiated
 * path (fused inference ops, integer/quantization ops, ops only the backward pass emits).
 */
export type Vjp = VjpRule | 'zero' | 'inference-only';

export interface OpSpec {
  /** attribute name → type (ONNX needs the type; JS numbers don't carry int vs float) */
  attrs: Record<string, AttrType>;
  /** operator-set domain when not the default ONNX one ('com.microsoft' for ONNX Runtime's contrib ops) */
  domain?: string;
  infer(ctx: InferContext): OutputType[];
  /** floating-point operations for one evaluation, symbols resolved by `sym` (absent: data movement only) */
  flops?(inputs: Shape[], outputs: Shape[], attrs: Record<string, AttrValue>, sym: (d: Dim) => number): number;
  /** required: a new op says how it differentiates */
  vjp: Vjp;
}

/** The forward half of a row, shared by ops with the same shape rule. */
type Forward = Omit<OpSpec, 'vjp'>;

// ---- helpers for shape rules ----

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function fail(ctx: InferContext, problem: string): never {
  throw new Error(`${ctx.op}: ${problem} (inputs ${ctx.inputs.map((i) => (i ? shapeString(i.shape) : '-')).join(', ')})`);
}

function req(ctx: InferContext, i: number): ValueInfo {
  const v = ctx.inputs[i];
  if (!v) fail(ctx, `input ${i} is required`);
  return v;
}

function constInts(ctx: InferContext, i: number): number[] {
  const v = req(ctx, i);
  const values = ctx.graph.constantInts(v.name);
  if (!values) fail(ctx, `input ${i} ("${v.name}") must be an int64 constant`);
  return values;
}

function broadcast(ctx: InferContext, shapes: Shape[]): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const e = s[s.length - rank + k] ?? 1;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (!sameDim(d, e)) fail(ctx, `shapes do not broadcast`);
    }
    out.push(d);
  }
  return out;
}

const elementwiseFlops = (_i: Shape[], o: Shape[], _a: unknown, sym: (d: Dim) => number): number => o[0]!.reduce<number>((n, d) => n * sym(d), 1);

const unary: Forward = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: [...req(ctx, 0).shape] }],
  flops: elementwiseFlops,
};

const binary: Forward = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape]) }],
  flops: elementwiseFlops,
};

const compare: Forward = {
  attrs: {},
  infer: (ctx) => [{ dtype: 'bool', shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape]) }],
};

const variadic: Forward = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, ctx.inputs.map((_, i) => req(ctx, i).shape)) }],
  flops: elementwiseFlops,
};

function reduce(ctx: InferContext): OutputType[] {
  const x = req(ctx, 0);
  const keep = (ctx.attrs.keepdims ?? 1) === 1;
  const rank = x.shape.length;
  const axes = ctx.inputs[1] ? constInts(ctx, 1).map((a) => normAxis(a, rank)) : x.shape.map((_, i) => i);
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

const reduceSpec: Forward = {
  attrs: { keepdims: 'int', noop_with_empty_axes: 'int' },
  infer: reduce,
  flops: (i, _o, _a, sym) => i[0]!.reduce<number>((n, d) => n * sym(d), 1),
};

function convOut(size: Dim, k: number, s: number, d: number, p0: number, p1: number, ctx: InferContext, ceil = false): number {
  if (typeof size !== 'number') fail(ctx, 'spatial dims must be static');
  const span = size + p0 + p1 - d * (k - 1) - 1;
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

function poolInfer(ctx: InferContext): OutputType[] {
  const x = req(ctx, 0);
  const k = ctx.attrs.kernel_shape as number[];
  const spatial = x.shape.length - 2;
  const strides = (ctx.attrs.strides as number[] | undefined) ?? Array(spatial).fill(1);
  const pads = (ctx.attrs.pads as number[] | undefined) ?? Array(2 * spatial).fill(0);
  const ceil = ctx.attrs.ceil_mode === 1;
  const shape: Dim[] = [x.shape[0]!, x.shape[1]!];
  for (let i = 0; i < spatial; i++) shape.push(convOut(x.shape[2 + i]!, k[i]!, strides[i]!, 1, pads[i]!, pads[i + spatial]!, ctx, ceil));
  return [{ dtype: x.dtype, shape }];
}

const poolSpec: Forward = {
  attrs: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', ceil_mode: 'int', count_include_pad: 'int', auto_pad: 'string', dilations: 'ints', storage_order: 'int' },
  infer: poolInfer,
  flops: (_i, o, a, sym) => o[0]!.reduce<number>((n, d) => n * sym(d), 1) * (a.kernel_shape as number[]).reduce((p, k) => p * k, 1),
};

const matmul: Forward = {
  attrs: {},
  infer: (ctx) => {
    const a = req(ctx, 0).shape;
    const b = req(ctx, 1).shape;
    if (a.length < 2 || b.length < 2) fail(ctx, 'both inputs need rank ≥ 2');
    if (!sameDim(a[a.length - 1]!, b[b.length - 2]!)) fail(ctx, 'inner dims differ');
    const batch = broadcast(ctx, [a.slice(0, -2), b.slice(0, -2)]);
    return [{ dtype: req(ctx, 0).dtype, shape: [...batch, a[a.length - 2]!, b[b.length - 1]!] }];
  },
  flops: (i, o, _a, sym) => 2 * o[0]!.reduce<number>((n, d) => n * sym(d), 1) * sym(i[0]![i[0]!.length - 1]!),
};

const conv: Forward = {
  attrs: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', dilations: 'ints', group: 'int', auto_pad: 'string' },
  infer: (ctx) => {
    const x = req(ctx, 0).shape;
    const w = req(ctx, 1).shape;
    const group = (ctx.attrs.group as number | undefined) ?? 1;
    if (x.length !== 4 || w.length !== 4) fail(ctx, 'only 2-D convolution');
    if (typeof x[1] !== 'number' || x[1] !== (w[1] as number) * group) fail(ctx, 'channels do not match the weight');
    const k = [w[2] as number, w[3] as number];
    const s = (ctx.attrs.strides as number[] | undefined) ?? [1, 1];
    const d = (ctx.attrs.dilations as number[] | undefined) ?? [1, 1];
    const p = (ctx.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
    return [{ dtype: req(ctx, 0).dtype, shape: [x[0]!, w[0]!, convOut(x[2]!, k[0]!, s[0]!, d[0]!, p[0]!, p[2]!, ctx), convOut(x[3]!, k[1]!, s[1]!, d[1]!, p[1]!, p[3]!, ctx)] }];
  },
  flops: (i, o, _a, sym) => {
    const w = i[1]!.map(sym);
    return 2 * o[0]!.reduce<number>((n, d) => n * sym(d), 1) * w[1]! * w[2]! * w[3]!;
  },
};

// ---- helpers for VJP rules (backward graphs are static) ----

export function staticShape(g: GraphBuilder, name: string): number[] {
  const shape = g.shape(name);
  return shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`autodiff needs static shapes; "${name}" has symbolic dim "${d}" (build the training graph for a fixed batch)`);
    return d;
  });
}

const dtypeOf = (g: GraphBuilder, name: string): TensorType => g.info(name).dtype;

const ELEMENT_ARRAYS: Partial<Record<TensorType, (n: number, v: number) => Float32Array | Float64Array>> = {
  float32: (n, v) => new Float32Array(n).fill(v),
  float64: (n, v) => new Float64Array(n).fill(v),
};

/** A scalar constant of the same floating type as `like` (float64 graphs are used by the gradient checks). */
export function scalarLike(g: GraphBuilder, value: number, like: string): string {
  const dtype = dtypeOf(g, like);
  if (dtype === 'float32') return g.scalar(value);
  const make = ELEMENT_ARRAYS[dtype];
  if (!make) throw new Error(`no floating scalar of type ${dtype}`);
  return g.constant(make(1, value) as Float32Array, [], dtype, `${dtype}(${value})`, true);
}

/** A constant of `like`'s shape and floating type with every element `value` (zeros for unused outputs, ones for the seed). */
export function filledLike(g: GraphBuilder, like: string, value: number): string {
  const shape = staticShape(g, like);
  const dtype = dtypeOf(g, like);
  const make = ELEMENT_ARRAYS[dtype];
  if (!make) throw new Error(`no floating constant of type ${dtype} (like "${like}")`);
  return g.constant(make(shape.reduce((a, b) => a * b, 1), value) as Float32Array, shape, dtype);
}

/** Sums a broadcast gradient back to the shape of the operand it came from. */
export function unbroadcast(g: GraphBuilder, grad: string, target: readonly number[]): string {
  const shape = staticShape(g, grad);
  if (shape.length === target.length && shape.every((d, i) => d === target[i])) return grad;
  const lead = shape.length - target.length;
  const axes: number[] = [];
  shape.forEach((d, i) => {
    if (i < lead || (target[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  let out = axes.length ? g.op('ReduceSum', [grad, g.ints(axes)], { keepdims: 1 }) : grad;
  if (lead > 0 || axes.length === 0) out = g.reshape(out, [...target]);
  return out;
}

function expandTo(g: GraphBuilder, value: string, shape: readonly number[]): string {
  return g.op('Expand', [value, g.ints(shape)]);
}

/** The shape a reduction had with keepdims=1. */
function keptShape(inShape: readonly number[], axes: readonly number[]): number[] {
  return inShape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceAxes(g: GraphBuilder, node: Node, rank: number): number[] {
  const axesInput = node.inputs[1];
  if (!axesInput) return Array.from({ length: rank }, (_, i) => i);
  const axes = g.constantInts(axesInput);
  if (!axes) throw new Error(`${node.op}: axes must be constant to differentiate`);
  return axes.map((a) => normAxis(a, rank));
}

function swapLast(g: GraphBuilder, value: string): string {
  const rank = g.shape(value).length;
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 1] = rank - 2;
  perm[rank - 2] = rank - 1;
  return g.transpose(value, perm);
}

const neg = (g: GraphBuilder, v: string): string => g.op('Neg', [v]);

// ---- 1-D linear interpolation matrices, for the adjoint of Resize ----

/** Row o holds the weights output sample o takes from each input sample (ONNX/PyTorch 'linear'). */
export function linearInterpolationMatrix(inSize: number, outSize: number, mode: string): Float64Array {
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    let src: number;
    if (mode === 'align_corners') src = outSize === 1 ? 0 : (o * (inSize - 1)) / (outSize - 1);
    else if (mode === 'half_pixel' || mode === 'pytorch_half_pixel') src = Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    else if (mode === 'asymmetric') src = (o * inSize) / outSize;
    else throw new Error(`Resize: no VJP for coordinate_transformation_mode "${mode}"`);
    src = Math.min(src, inSize - 1);
    const i0 = Math.floor(src);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const lambda = src - i0;
    m[o * inSize + i0]! += 1 - lambda;
    m[o * inSize + i1]! += lambda;
  }
  return m;
}

function matrixConstant(g: GraphBuilder, values: Float64Array, rows: number, cols: number, transpose: boolean, like: string): string {
  const dtype = dtypeOf(g, like);
  const out = dtype === 'float64' ? new Float64Array(rows * cols) : new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[transpose ? c * rows + r : r * cols + c] = values[r * cols + c]!;
  return g.constant(out as Float32Array, transpose ? [cols, rows] : [rows, cols], dtype);
}

const ints = (v: unknown, fallback: number[]): number[] => (Array.isArray(v) ? (v as number[]) : fallback);

// ---- the two adjoints of a 2-D convolution ----

interface ConvGeometry {
  /** input (N, Cin, H, W) and output (N, Cout, Ho, Wo) shapes */
  x: number[];
  y: number[];
  kernel: [number, number];
  strides: number[];
  dilations: number[];
  /** ONNX order: [top, left, bottom, right] */
  pads: number[];
}

const isStride1 = (c: ConvGeometry): boolean => c.strides.every((s) => s === 1);

/**
 * ∂/∂x of a convolution. With stride 1 it is itself a convolution: of the output gradient with the
 * kernel rotated by 180° and its channel axes swapped, padded by d·(k − 1) − p. ONNX Runtime runs
 * a Conv markedly faster than the ConvTranspose that states the same thing (ConvTranspose is a GEMM
 * into a column buffer, then a scatter-add back to the image), so only strided convolutions (and
 * padding beyond the kernel's reach, where the adjoint would crop) keep it.
 */
function convInputGrad(g: GraphBuilder, gy: string, weight: string, c: ConvGeometry): string {
  const { kernel, strides, dilations, pads } = c;
  const adjointPads = [0, 1, 0, 1].map((axis, i) => dilations[axis]! * (kernel[axis]! - 1) - pads[i]!);
  if (isStride1(c) && adjointPads.every((p) => p >= 0)) {
    let rotated = g.transpose(weight, [1, 0, 2, 3]);
    const flipped = [2, 3].filter((axis) => kernel[axis - 2]! > 1);
    // reversed by a Slice with step −1 (half the time of a Gather with reversed indices)
    if (flipped.length) {
      const last = -(2 ** 62);
      rotated = g.op('Slice', [rotated, g.ints(flipped.map(() => -1)), g.ints(flipped.map(() => last)), g.ints(flipped), g.ints(flipped.map(() => -1))]);
    }
    return g.op('Conv', [gy, rotated], { kernel_shape: kernel, strides: [1, 1], dilations, pads: adjointPads });
  }
  // Rows/columns of the input that the forward pass never reached (stride remainder) get output_padding.
  const outputPadding = [0, 1].map((i) => c.x[2 + i]! + pads[i]! + pads[i + 2]! - (strides[i]! * (c.y[2 + i]! - 1) + dilations[i]! * (kernel[i]! - 1) + 1));
  return g.op('ConvTranspose', [gy, weight], { kernel_shape: kernel, strides, dilations, pads, output_padding: outputPadding });
}

/**
 * ∂/∂W of a convolution: dW[o, i, a, b] = Σ_n,y,x gy[n, o, y, x] · xpad[n, i, y + a·d, x + b·d]
 * (stride 1). Per kernel tap (a, b) that is one batched matrix product, gy (N, Cout, Ho·Wo) times
 * the shifted input (N, Cin, Ho·Wo) transposed, summed over the batch: GEMMs with the long
 * Ho·Wo axis as their inner dimension, which run near the CPU's peak. The direct formulation as
 * a convolution of the input (batch and channels swapped) with the output gradient as its
 * kernel ran at a fifth of that in ONNX Runtime (a Ho×Wo kernel over an N-channel image), and an
 * im2col matrix of all taps at once costs a kernel-sized multiple of the input in memory.
 * Strided convolutions (the patch embedding, trained only by the full strategy) keep the
 * convolution form, which handles the stride as a dilation.
 */
function convWeightGrad(g: GraphBuilder, input: string, gy: string, c: ConvGeometry): string {
  const { kernel, dilations, pads } = c;
  const [n, cin, h, w] = c.x as [number, number, number, number];
  const [, cout, ho, wo] = c.y as [number, number, number, number];
  const [kh, kw] = kernel;
  if (!isStride1(c)) {
    const full = g.op('Conv', [g.transpose(input, [1, 0, 2, 3]), g.transpose(gy, [1, 0, 2, 3])], {
      kernel_shape: [ho, wo],
      strides: dilations,
      dilations: c.strides,
      pads,
    });
    const fullShape = staticShape(g, full);
    const cropped = fullShape[2] === kh && fullShape[3] === kw ? full : g.slice(full, [0, 0], kernel, [2, 3]);
    return g.transpose(cropped, [1, 0, 2, 3]);
  }
  const gyRows = g.reshape(gy, [n, cout, ho * wo]);
  const padded = pads.some((p) => p !== 0) ? g.pad(input, [0, 0, pads[0]!, pads[1]!, 0, 0, pads[2]!, pads[3]!]) : input;
  const [hp, wp] = [h + pads[0]! + pads[2]!, w + pads[1]! + pads[3]!];
  const taps: string[] = [];
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const [y0, x0] = [a * dilations[0]!, b * dilations[1]!];
      const whole = y0 === 0 && x0 === 0 && ho === hp && wo === wp;
      const shifted = whole ? padded : g.slice(padded, [y0, x0], [y0 + ho, x0 + wo], [2, 3]);
      const product = g.matmul(gyRows, g.transpose(g.reshape(shifted, [n, cin, ho * wo]), [0, 2, 1]));
      taps.push(g.op('ReduceSum', [product, g.ints([0])], { keepdims: 0 }));
    }
  }
  if (taps.length === 1) return g.reshape(taps[0]!, [cout, cin, 1, 1]);
  return g.reshape(g.concat(taps.map((t) => g.reshape(t, [cout, cin, 1])), 2), [cout, cin, kh, kw]);
}

/** Max/Min: the gradient goes to the chosen operand; ties go to the first. */
function binaryChoice(g: GraphBuilder, x: string[], gy: string, needs: boolean[], comparison: 'Greater' | 'Less'): (string | undefined)[] {
  if (x.length !== 2) throw new Error('Max/Min: only the two-input form is differentiated');
  const secondWins = g.op(comparison === 'Greater' ? 'Less' : 'Greater', [x[0]!, x[1]!]);
  const zero = scalarLike(g, 0, gy);
  return [
    needs[0] ? unbroadcast(g, g.op('Where', [secondWins, zero, gy]), staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, g.op('Where', [secondWins, gy, zero]), staticShape(g, x[1]!)) : undefined,
  ];
}

// ---- the table ----

export const OPS = {
  Identity: { ...unary, vjp: ({ gy }): Grads => [gy[0]] },
  Neg: { ...unary, vjp: ({ g, gy }): Grads => [neg(g, gy[0]!)] },
  Abs: { ...unary, vjp: ({ g, x, gy }): Grads => [g.mul(gy[0]!, g.op('Sign', [x[0]!]))] },
  Exp: { ...unary, vjp: ({ g, y, gy }): Grads => [g.mul(gy[0]!, y[0]!)] },
  Log: { ...unary, vjp: ({ g, x, gy }): Grads => [g.div(gy[0]!, x[0]!)] },
  Sqrt: { ...unary, vjp: ({ g, y, gy }): Grads => [g.div(g.mul(gy[0]!, scalarLike(g, 0.5, y[0]!)), y[0]!)] },
  Erf: {
    ...unary,
    vjp: ({ g, x, gy }): Grads => {
      const slope = g.mul(scalarLike(g, 2 / Math.sqrt(Math.PI), x[0]!), g.op('Exp', [neg(g, g.mul(x[0]!, x[0]!))]));
      return [g.mul(gy[0]!, slope)];
    },
  },
  Tanh: { ...unary, vjp: ({ g, y, gy }): Grads => [g.mul(gy[0]!, g.sub(scalarLike(g, 1, y[0]!), g.mul(y[0]!, y[0]!)))] },
  Sigmoid: { ...unary, vjp: ({ g, y, gy }): Grads => [g.mul(gy[0]!, g.mul(y[0]!, g.sub(scalarLike(g, 1, y[0]!), y[0]!)))] },
  Relu: { ...unary, vjp: ({ g, x, gy }): Grads => [g.op('Where', [g.op('Greater', [x[0]!, scalarLike(g, 0, x[0]!)]), gy[0]!, scalarLike(g, 0, x[0]!)])] },
  /** piecewise constant: zero gradient almost everywhere, as PyTorch's sign */
  Sign: { ...unary, vjp: 'zero' },
  Gelu: {
    attrs: { approximate: 'string' },
    infer: unary.infer,
    flops: elementwiseFlops,
    vjp: ({ g, node, x, gy }): Grads => {
      if ((node.attrs.approximate ?? 'none') !== 'none') throw new Error('Gelu: only the exact (erf) form is differentiated');
      const v = x[0]!;
      const cdf = g.mul(scalarLike(g, 0.5, v), g.add(scalarLike(g, 1, v), g.op('Erf', [g.mul(v, scalarLike(g, Math.SQRT1_2, v))])));
      const pdf = g.mul(scalarLike(g, 1 / Math.sqrt(2 * Math.PI), v), g.op('Exp', [g.mul(g.mul(v, v), scalarLike(g, -0.5, v))]));
      return [g.mul(gy[0]!, g.add(cdf, g.mul(v, pdf)))];
    },
  },
  Add: {
    ...binary,
    vjp: ({ g, x, gy, needs }): Grads => [
      needs[0] ? unbroadcast(g, gy[0]!, staticShape(g, x[0]!)) : undefined,
      needs[1] ? unbroadcast(g, gy[0]!, staticShape(g, x[1]!)) : undefined,
    ],
  },
  Sub: {
    ...binary,
    vjp: ({ g, x, gy, needs }): Grads => [
      needs[0] ? unbroadcast(g, gy[0]!, staticShape(g, x[0]!)) : undefined,
      needs[1] ? unbroadcast(g, neg(g, gy[0]!), staticShape(g, x[1]!)) : undefined,
    ],
  },
  Mul: {
    ...binary,
    vjp: ({ g, x, gy, needs }): Grads => [
      needs[0] ? unbroadcast(g, g.mul(gy[0]!, x[1]!), staticShape(g, x[0]!)) : undefined,
      needs[1] ? unbroadcast(g, g.mul(gy[0]!, x[0]!), staticShape(g, x[1]!)) : undefined,
    ],
  },
  Div: {
    ...binary,
    vjp: ({ g, x, y, gy, needs }): Grads => [
      needs[0] ? unbroadcast(g, g.div(gy[0]!, x[1]!), staticShape(g, x[0]!)) : undefined,
      needs[1] ? unbroadcast(g, neg(g, g.div(g.mul(gy[0]!, y[0]!), x[1]!)), staticShape(g, x[1]!)) : undefined,
    ],
  },
  Pow: {
    ...binary,
    vjp: ({ g, x, y, gy, needs }): Grads => {
      const base = x[0]!;
      const exponent = x[1]!;
      const dBase = needs[0]
        ? unbroadcast(g, g.mul(gy[0]!, g.mul(exponent, g.op('Pow', [base, g.sub(exponent, scalarLike(g, 1, exponent))]))), staticShape(g, base))
        : undefined;
      const dExp = needs[1] ? unbroadcast(g, g.mul(gy[0]!, g.mul(y[0]!, g.op('Log', [base]))), staticShape(g, exponent)) : undefined;
      return [dBase, dExp];
    },
  },
  Equal: { ...compare, vjp: 'zero' },
  Greater: { ...compare, vjp: 'zero' },
  Less: { ...compare, vjp: 'zero' },
  Max: { ...variadic, vjp: ({ g, x, gy, needs }): Grads => binaryChoice(g, x, gy[0]!, needs, 'Greater') },
  Min: { ...variadic, vjp: ({ g, x, gy, needs }): Grads => binaryChoice(g, x, gy[0]!, needs, 'Less') },
  Where: {
    attrs: {},
    infer: (ctx) => [{ dtype: req(ctx, 1).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape, req(ctx, 2).shape]) }],
    vjp: ({ g, x, gy, needs }): Grads => {
      const zero = scalarLike(g, 0, gy[0]!);
      return [
        undefined,
        needs[1] ? unbroadcast(g, g.op('Where', [x[0]!, gy[0]!, zero]), staticShape(g, x[1]!)) : undefined,
        needs[2] ? unbroadcast(g, g.op('Where', [x[0]!, zero, gy[0]!]), staticShape(g, x[2]!)) : undefined,
      ];
    },
  },
  Cast: {
    attrs: { to: 'int' },
    infer: (ctx) => {
      const to = ctx.attrs.to as number;
      const dtype = (Object.entries(ONNX_DTYPE).find(([, v]) => v === to)?.[0] as TensorType | undefined) ?? fail(ctx, `unsupported cast target ${to}`);
      return [{ dtype, shape: [...req(ctx, 0).shape] }];
    },
    vjp: ({ g, node, x, gy }): Grads => {
      const from = dtypeOf(g, x[0]!);
      const to = dtypeOf(g, node.outputs[0]!);
      if (from === to) return [gy[0]];
      if ((from === 'float32' || from === 'float64') && (to === 'float32' || to === 'float64')) {
        return [g.op('Cast', [gy[0]!], { to: from === 'float32' ? 1 : 11 })];
      }
      return [undefined];
    },
  },
  /** Linear layers: the PyTorch (out, in) weight as B with transB = 1. */
  Gemm: {
    attrs: { alpha: 'float', beta: 'float', transA: 'int', transB: 'int' },
    infer: (ctx) => {
      const a = req(ctx, 0).shape;
      const b = req(ctx, 1).shape;
      if (a.length !== 2 || b.length !== 2) fail(ctx, 'both inputs must be 2-D');
      const [m, k] = ctx.attrs.transA === 1 ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
      const [k2, n] = ctx.attrs.transB === 1 ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
      if (!sameDim(k, k2)) fail(ctx, 'inner dims differ');
      if (ctx.inputs[2]) broadcast(ctx, [[m, n], req(ctx, 2).shape]);
      return [{ dtype: req(ctx, 0).dtype, shape: [m, n] }];
    },
    flops: (i, o, a, sym) => 2 * o[0]!.reduce<number>((n, d) => n * sym(d), 1) * sym(a.transA === 1 ? i[0]![0]! : i[0]![1]!),
    /**
     * Y = op(A)·op(B) + C (alpha = beta = 1). Each adjoint is again a Gemm with the transposes folded
     * into its flags, so a constant B (a frozen (out, in) Linear weight read with transB) is read
     * as stored in both directions and ONNX Runtime prepacks it without a transposed copy.
     */
    vjp: ({ g, node, x, gy, needs }): Grads => {
      if ((node.attrs.alpha ?? 1) !== 1 || (node.attrs.beta ?? 1) !== 1) throw new Error('Gemm: only alpha = beta = 1 is differentiated');
      const [a, b] = [x[0]!, x[1]!];
      const ta = node.attrs.transA === 1;
      const tb = node.attrs.transB === 1;
      const gemm = (p: string, q: string, transA: boolean, transB: boolean): string => g.op('Gemm', [p, q], { transA: transA ? 1 : 0, transB: transB ? 1 : 0 });
      // dop(A) = gy·op(B)ᵀ and dop(B) = op(A)ᵀ·gy, transposed back where A or B is read transposed
      const da = needs[0] ? (ta ? gemm(b, gy[0]!, tb, true) : gemm(gy[0]!, b, false, !tb)) : undefined;
      const db = needs[1] ? (tb ? gemm(gy[0]!, a, true, ta) : gemm(a, gy[0]!, !ta, false)) : undefined;
      const dc = x[2] && needs[2] ? unbroadcast(g, gy[0]!, staticShape(g, x[2])) : undefined;
      return [da, db, dc];
    },
  },
  /**
   * ONNX Runtime's fused attention (com.microsoft, inference graphs only; training graphs get the
   * primitive composition): q (N, Lq, D), k and v (N, L, D) → softmax(q kᵀ · scale) v per head, (N, Lq, D).
   */
  MultiHeadAttention: {
    domain: 'com.microsoft',
    attrs: { num_heads: 'int', scale: 'float' },
    infer: (ctx) => {
      const q = req(ctx, 0).shape;
      const k = req(ctx, 1).shape;
      const v = req(ctx, 2).shape;
      if (q.length !== 3 || k.length !== 3 || v.length !== 3) fail(ctx, 'q, k and v must be (N, L, D)');
      if (!sameDim(q[2]!, k[2]!) || !sameDim(k[1]!, v[1]!) || !sameDim(q[0]!, k[0]!)) fail(ctx, 'q, k, v do not agree');
      if (typeof q[2] !== 'number' || q[2] % (ctx.attrs.num_heads as number) !== 0) fail(ctx, 'D must divide into num_heads');
      return [{ dtype: req(ctx, 0).dtype, shape: [q[0]!, q[1]!, v[2]!] }];
    },
    flops: (i, _o, _a, sym) => {
      const [n, lq, d] = i[0]!.map(sym) as [number, number, number];
      const l = sym(i[1]![1]!);
      return 4 * n * lq * l * d + 3 * n * lq * l;
    },
    vjp: 'inference-only',
  },
  MatMul: {
    ...matmul,
    vjp: ({ g, x, gy, needs }): Grads => {
      const [a, b] = [x[0]!, x[1]!];
      return [
        needs[0] ? unbroadcast(g, g.matmul(gy[0]!, swapLast(g, b)), staticShape(g, a)) : undefined,
        needs[1] ? unbroadcast(g, g.matmul(swapLast(g, a), gy[0]!), staticShape(g, b)) : undefined,
      ];
    },
  },
  ReduceSum: {
    ...reduceSpec,
    vjp: ({ g, node, x, gy }): Grads => {
      const shape = staticShape(g, x[0]!);
      const axes = reduceAxes(g, node, shape.length);
      return [expandTo(g, g.reshape(gy[0]!, keptShape(shape, axes)), shape)];
    },
  },
  /** Running sum along the axis given as a constant int64 input. */
  CumSum: {
    attrs: { exclusive: 'int', reverse: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const axis = constInts(ctx, 1);
      if (axis.length !== 1 || normAxis(axis[0]!, x.shape.length) < 0 || normAxis(axis[0]!, x.shape.length) >= x.shape.length) fail(ctx, 'the axis must be one valid axis');
      return [{ dtype: x.dtype, shape: [...x.shape] }];
    },
    flops: elementwiseFlops,
    /** The adjoint of a running sum is the running sum taken from the other end. */
    vjp: ({ g, node, gy }): Grads => [g.op('CumSum', [gy[0]!, node.inputs[1]!], { exclusive: (node.attrs.exclusive as number | undefined) ?? 0, reverse: node.attrs.reverse === 1 ? 0 : 1 }), undefined],
  },
  ReduceMean: {
    ...reduceSpec,
    vjp: ({ g, node, x, gy }): Grads => {
      const shape = staticShape(g, x[0]!);
      const axes = reduceAxes(g, node, shape.length);
      const count = axes.reduce((n, a) => n * shape[a]!, 1);
      const scaled = g.mul(g.reshape(gy[0]!, keptShape(shape, axes)), scalarLike(g, 1 / count, gy[0]!));
      return [expandTo(g, scaled, shape)];
    },
  },
  ReduceMax: {
    ...reduceSpec,
    /** The gradient goes to every element equal to the maximum (ties share it in full, unlike PyTorch's first-index choice; ties are measure-zero in float data). */
    vjp: ({ g, node, x, y, gy }): Grads => {
      const shape = staticShape(g, x[0]!);
      const axes = reduceAxes(g, node, shape.length);
      const kept = keptShape(shape, axes);
      const isMax = g.op('Equal', [x[0]!, g.reshape(y[0]!, kept)]);
      return [g.op('Where', [isMax, expandTo(g, g.reshape(gy[0]!, kept), shape), scalarLike(g, 0, gy[0]!)])];
    },
  },
  Reshape: {
    attrs: { allowzero: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const target = constInts(ctx, 1);
      const shape: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i]! : d));
      const unknown = shape.indexOf(-1);
      if (unknown >= 0) {
        const known = shape.filter((_, i) => i !== unknown).reduce<Dim>((acc, d) => mulDims(acc, d), 1);
        const rest = divDims(numelOf(x.shape), known);
        if (rest === undefined) fail(ctx, `cannot reshape to [${target}]`);
        shape[unknown] = rest;
      } else if (!sameDim(numelOf(shape), numelOf(x.shape))) {
        fail(ctx, `cannot reshape to [${target}]`);
      }
      return [{ dtype: x.dtype, shape }];
    },
    vjp: ({ g, x, gy }): Grads => [g.reshape(gy[0]!, staticShape(g, x[0]!)), undefined],
  },
  Transpose: {
    attrs: { perm: 'ints' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const perm = (ctx.attrs.perm as number[] | undefined) ?? x.shape.map((_, i) => x.shape.length - 1 - i);
      if (perm.length !== x.shape.length) fail(ctx, `perm [${perm}] does not match the rank`);
      return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
    },
    vjp: ({ g, node, x, gy }): Grads => {
      const rank = g.shape(x[0]!).length;
      const perm = ints(node.attrs.perm, Array.from({ length: rank }, (_, i) => rank - 1 - i));
      const inverse = new Array<number>(rank);
      perm.forEach((p, i) => (inverse[p] = i));
      return [g.transpose(gy[0]!, inverse)];
    },
  },
  Concat: {
    attrs: { axis: 'int' },
    infer: (ctx) => {
      const first = req(ctx, 0);
      const axis = normAxis(ctx.attrs.axis as number, first.shape.length);
      const shape = [...first.shape];
      for (let i = 1; i < ctx.inputs.length; i++) {
        const s = req(ctx, i).shape;
        if (s.length !== shape.length || s.some((d, k) => k !== axis && !sameDim(d, shape[k]!))) fail(ctx, 'shapes differ outside the axis');
        shape[axis] = typeof shape[axis] === 'number' && typeof s[axis] === 'number' ? shape[axis] + s[axis] : fail(ctx, 'symbolic concat axis');
      }
      return [{ dtype: first.dtype, shape }];
    },
    vjp: ({ g, node, x, gy, needs }): Grads => {
      const rank = g.shape(x[0]!).length;
      const axis = normAxis(node.attrs.axis as number, rank);
      const sizes = x.map((v) => staticShape(g, v)[axis]!);
      const parts = sizes.length === 1 ? [gy[0]!] : g.split(gy[0]!, sizes, axis);
      return parts.map((p, i) => (needs[i] ? p : undefined));
    },
  },
  Slice: {
    attrs: {},
    infer: (ctx) => {
      const x = req(ctx, 0);
      const starts = constInts(ctx, 1);
      const ends = constInts(ctx, 2);
      const axes = ctx.inputs[3] ? constInts(ctx, 3) : starts.map((_, i) => i);
      const steps = ctx.inputs[4] ? constInts(ctx, 4) : starts.map(() => 1);
      const shape = [...x.shape];
      axes.forEach((a, i) => {
        const axis = normAxis(a, shape.length);
        const n = shape[axis]!;
        if (typeof n !== 'number') fail(ctx, 'slicing a symbolic axis');
        const step = steps[i]!;
        if (step === 0) fail(ctx, 'a step of 0');
        if (step > 0) {
          const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
          shape[axis] = Math.max(0, Math.ceil((clamp(ends[i]!) - clamp(starts[i]!)) / step));
        } else {
          // ONNX: a negative step walks from start (clamped to [0, n − 1]) down to end (clamped to [−1, n − 1])
          const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, -1), n - 1);
          shape[axis] = Math.max(0, Math.ceil((clamp(ends[i]!) - clamp(starts[i]!)) / step));
        }
      });
      return [{ dtype: x.dtype, shape }];
    },
    vjp: ({ g, node, x, gy }): Grads => {
      const shape = staticShape(g, x[0]!);
      const rank = shape.length;
      const starts = g.constantInts(node.inputs[1]!)!;
      const ends = g.constantInts(node.inputs[2]!)!;
      const axes = node.inputs[3] ? g.constantInts(node.inputs[3])! : starts.map((_, i) => i);
      if (node.inputs[4] && g.constantInts(node.inputs[4])!.some((step) => step !== 1)) throw new Error('Slice: only unit steps are differentiated');
      const pads = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        const axis = normAxis(a, rank);
        const n = shape[axis]!;
        const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
        const begin = clamp(starts[i]!);
        const end = clamp(ends[i]!);
        pads[axis] = begin;
        pads[axis + rank] = n - Math.max(begin, end);
      });
      return [g.pad(gy[0]!, pads)];
    },
  },
  Pad: {
    attrs: { mode: 'string' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const pads = constInts(ctx, 1);
      const r = x.shape.length;
      if (pads.length !== 2 * r) fail(ctx, `needs ${2 * r} pads`);
      return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (pads[i] === 0 && pads[i + r] === 0 ? d : typeof d === 'number' ? d + pads[i]! + pads[i + r]! : fail(ctx, 'padding a symbolic axis'))) }];
    },
    vjp: ({ g, node, x, gy }): Grads => {
      if ((node.attrs.mode ?? 'constant') !== 'constant') throw new Error('Pad: only constant padding is differentiated');
      const shape = staticShape(g, x[0]!);
      const pads = g.constantInts(node.inputs[1]!)!;
      if (pads.some((p) => p < 0)) throw new Error('Pad: negative pads (cropping) are not differentiated');
      const rank = shape.length;
      const axes = shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[i + rank] !== 0);
      if (!axes.length) return [gy[0]];
      return [g.slice(gy[0]!, axes.map((a) => pads[a]!), axes.map((a) => pads[a]! + shape[a]!), axes)];
    },
  },
  Split: {
    attrs: { axis: 'int', num_outputs: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const axis = normAxis((ctx.attrs.axis as number | undefined) ?? 0, x.shape.length);
      const sizes = constInts(ctx, 1);
      if (sizes.length !== ctx.outputCount) fail(ctx, 'one size per output');
      if (sizes.reduce((a, b) => a + b, 0) !== x.shape[axis]) fail(ctx, `sizes [${sizes}] do not sum to the axis`);
      return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? s : d)) }));
    },
    vjp: ({ g, node, y, gy }): Grads => {
      const rank = g.shape(y[0]!).length;
      const axis = normAxis((node.attrs.axis as number | undefined) ?? 0, rank);
      const parts = y.map((out, i) => gy[i] ?? filledLike(g, out, 0));
      return [parts.length === 1 ? parts[0]! : g.concat(parts, axis), undefined];
    },
  },
  /** Only the int8 convolution's im2col uses it (onnx/quantize.ts); its adjoint (a scatter-add) is not written. */
  Gather: {
    attrs: { axis: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const idx = req(ctx, 1);
      const axis = normAxis((ctx.attrs.axis as number | undefined) ?? 0, x.shape.length);
      return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
    },
    vjp: 'inference-only',
  },
  Expand: {
    attrs: {},
    infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, constInts(ctx, 1)]) }],
    vjp: ({ g, x, gy }): Grads => [unbroadcast(g, gy[0]!, staticShape(g, x[0]!)), undefined],
  },
  Conv: {
    ...conv,
    vjp: ({ g, node, x, gy, needs }): Grads => {
      const [input, weight] = [x[0]!, x[1]!];
      const group = (node.attrs.group as number | undefined) ?? 1;
      if (group !== 1) throw new Error('Conv: grouped convolutions are not differentiated');
      const geometry: ConvGeometry = {
        x: staticShape(g, input),
        y: staticShape(g, gy[0]!),
        kernel: staticShape(g, weight).slice(2) as [number, number],
        strides: ints(node.attrs.strides, [1, 1]),
        dilations: ints(node.attrs.dilations, [1, 1]),
        pads: ints(node.attrs.pads, [0, 0, 0, 0]),
      };
      const dx = needs[0] ? convInputGrad(g, gy[0]!, weight, geometry) : undefined;
      const dw = needs[1] ? convWeightGrad(g, input, gy[0]!, geometry) : undefined;
      const db = x[2] && needs[2] ? g.op('ReduceSum', [gy[0]!, g.ints([0, 2, 3])], { keepdims: 0 }) : undefined;
      return [dx, dw, db];
    },
  },
  /**
   * Only as the adjoint of Conv (backward graphs, which are not differentiated again); output size
   * from output_padding, no output_shape.
   */
  ConvTranspose: {
    attrs: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', dilations: 'ints', group: 'int', output_padding: 'ints' },
    infer: (ctx) => {
      const x = req(ctx, 0).shape;
      const w = req(ctx, 1).shape;
      if (x.length !== 4 || w.length !== 4) fail(ctx, 'only 2-D transposed convolution');
      const s = (ctx.attrs.strides as number[] | undefined) ?? [1, 1];
      const d = (ctx.attrs.dilations as number[] | undefined) ?? [1, 1];
      const p = (ctx.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
      const op = (ctx.attrs.output_padding as number[] | undefined) ?? [0, 0];
      const size = (i: number): number => {
        const n = x[2 + i];
        if (typeof n !== 'number') fail(ctx, 'spatial dims must be static');
        return s[i]! * (n - 1) + op[i]! + d[i]! * ((w[2 + i] as number) - 1) + 1 - p[i]! - p[i + 2]!;
      };
      return [{ dtype: req(ctx, 0).dtype, shape: [x[0]!, w[1]!, size(0), size(1)] }];
    },
    flops: (i, _o, _a, sym) => 2 * i[0]!.reduce<number>((n, dim) => n * sym(dim), 1) * i[1]!.slice(1).reduce<number>((n, dim) => n * sym(dim), 1),
    vjp: 'inference-only',
  },
  /** No model builds pooling today; kept for the ONNX importer's op coverage, without adjoints. */
  MaxPool: { ...poolSpec, vjp: 'inference-only' },
  AveragePool: { ...poolSpec, vjp: 'inference-only' },
  Resize: {
    attrs: { mode: 'string', coordinate_transformation_mode: 'string', nearest_mode: 'string', cubic_coeff_a: 'float', antialias: 'int', exclude_outside: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const scalesName = req(ctx, 2).name;
      const scales = ctx.graph.constantFloats(scalesName) ?? fail(ctx, 'scales must be a constant');
      return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (scales[i] === 1 ? d : typeof d === 'number' ? Math.floor(d * scales[i]!) : fail(ctx, 'resizing a symbolic axis'))) }];
    },
    flops: (_i, o, _a, sym) => 4 * o[0]!.reduce<number>((n, d) => n * sym(d), 1),
    vjp: ({ g, node, x, gy }): Grads => {
      if (node.attrs.mode !== 'linear') throw new Error(`Resize: only linear mode is differentiated (got ${String(node.attrs.mode)})`);
      const mode = (node.attrs.coordinate_transformation_mode as string | undefined) ?? 'half_pixel';
      const xs = staticShape(g, x[0]!);
      const ys = staticShape(g, gy[0]!);
      if (xs.length !== 4 || xs[0] !== ys[0] || xs[1] !== ys[1]) throw new Error('Resize: only spatial resizing of NCHW maps is differentiated');
      // y = Ry · x · Rxᵀ per map, so the adjoint is Ryᵀ · gy · Rx.
      const ry = linearInterpolationMatrix(xs[2]!, ys[2]!, mode);
      const rx = linearInterpolationMatrix(xs[3]!, ys[3]!, mode);
      const left = g.matmul(matrixConstant(g, ry, ys[2]!, xs[2]!, true, gy[0]!), gy[0]!);
      return [g.matmul(left, matrixConstant(g, rx, ys[3]!, xs[3]!, false, gy[0]!))];
    },
  },
  Softmax: {
    attrs: { axis: 'int' },
    infer: unary.infer,
    flops: (_i, o, _a, sym) => 3 * elementwiseFlops(_i, o, _a, sym),
    vjp: ({ g, node, y, gy }): Grads => {
      const axis = (node.attrs.axis as number | undefined) ?? -1;
      const dot = g.op('ReduceSum', [g.mul(gy[0]!, y[0]!), g.ints([axis])], { keepdims: 1 });
      return [g.mul(y[0]!, g.sub(gy[0]!, dot))];
    },
  },
  LayerNormalization: {
    attrs: { axis: 'int', epsilon: 'float', stash_type: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: [...req(ctx, 0).shape] }],
    flops: (_i, o, _a, sym) => 8 * elementwiseFlops(_i, o, _a, sym),
    vjp: ({ g, node, x, gy, needs }): Grads => {
      const input = x[0]!;
      const shape = staticShape(g, input);
      const axis = normAxis((node.attrs.axis as number | undefined) ?? -1, shape.length);
      const normAxes = shape.map((_, i) => i).filter((i) => i >= axis);
      const outerAxes = shape.map((_, i) => i).filter((i) => i < axis);
      const eps = (node.attrs.epsilon as number | undefined) ?? 1e-5;
      const mean = (v: string): string => g.op('ReduceMean', [v, g.ints(normAxes)], { keepdims: 1 });
      const centred = g.sub(input, mean(input));
      const invStd = g.div(scalarLike(g, 1, input), g.op('Sqrt', [g.add(mean(g.mul(centred, centred)), scalarLike(g, eps, input))]));
      const xhat = g.mul(centred, invStd);
      const scaled = x[1] ? g.mul(gy[0]!, x[1]) : gy[0]!;
      const dx = needs[0] ? g.mul(invStd, g.sub(g.sub(scaled, mean(scaled)), g.mul(xhat, mean(g.mul(scaled, xhat))))) : undefined;
      const paramShape = shape.slice(axis);
      const sumOuter = (v: string): string => g.reshape(g.op('ReduceSum', [v, g.ints(outerAxes)], { keepdims: 0 }), paramShape);
      return [dx, needs[1] ? sumOuter(g.mul(gy[0]!, xhat)) : undefined, needs[2] ? sumOuter(gy[0]!) : undefined];
    },
  },
  BatchNormalization: {
    attrs: { epsilon: 'float', momentum: 'float', training_mode: 'int' },
    infer: (ctx) => [{ dtype: 'float32', shape: [...req(ctx, 0).shape] }],
    flops: (_i, o, _a, sym) => 2 * elementwiseFlops(_i, o, _a, sym),
    /** Inference-mode BatchNormalization (running statistics are constants). Training graphs compose batch statistics from primitives instead. */
    vjp: ({ g, node, x, gy, needs }): Grads => {
      if (node.attrs.training_mode === 1) throw new Error('BatchNormalization: training mode is composed from primitives, not differentiated as one op');
      const [input, gamma, , mean, variance] = x as [string, string, string, string, string];
      const c = staticShape(g, gamma)[0]!;
      const rank = g.shape(input).length;
      const perChannel = (v: string): string => g.reshape(v, [1, c, ...new Array<number>(rank - 2).fill(1)]);
      const eps = (node.attrs.epsilon as number | undefined) ?? 1e-5;
      const invStd = g.div(scalarLike(g, 1, input), g.op('Sqrt', [g.add(variance, scalarLike(g, eps, input))]));
      const sumNHW = (v: string): string => g.op('ReduceSum', [v, g.ints([0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)])], { keepdims: 0 });
      const xhat = g.mul(g.sub(input, perChannel(mean)), perChannel(invStd));
      return [
        needs[0] ? g.mul(gy[0]!, perChannel(g.mul(gamma, invStd))) : undefined,
        needs[1] ? sumNHW(g.mul(gy[0]!, xhat)) : undefined,
        needs[2] ? sumNHW(gy[0]!) : undefined,
        undefined,
        undefined,
      ];
    },
  },
  // ---- integer and quantization ops (int8 inference graphs, onnx/quantize.ts) ----
  /** float → uint8 with a per-tensor scale and zero point computed from the tensor's own range */
  DynamicQuantizeLinear: {
    attrs: {},
    infer: (ctx) => {
      const x = req(ctx, 0);
      return [{ dtype: 'uint8', shape: [...x.shape] }, { dtype: 'float32', shape: [] }, { dtype: 'uint8', shape: [] }];
    },
    flops: (_i, o, _a, sym) => 3 * elementwiseFlops(_i, o, _a, sym),
    vjp: 'inference-only',
  },
  /** (A − a_zero_point)(B − b_zero_point) in int32; counted as the MatMul it replaces */
  MatMulInteger: {
    attrs: {},
    infer: (ctx) => [{ dtype: 'int32', shape: (matmul.infer(ctx)[0]!).shape }],
    flops: (i, o, a, sym) => matmul.flops!(i, o, a, sym),
    vjp: 'inference-only',
  },
  /**
   * ONNX Runtime's (A − a_zp)(B − b_zp) · a_scale · b_scale (+ bias) in float (com.microsoft, CPU): the
   * fused form of MatMulInteger → Cast → Mul, emitted directly where a_scale is a constant (ONNX
   * Runtime folds a constant Mul(a_scale, b_scale) before its fusion could see it). Inputs: A, B,
   * a_scale, b_scale, a_zero_point, b_zero_point, bias.
   */
  MatMulIntegerToFloat: {
    domain: 'com.microsoft',
    attrs: {},
    infer: (ctx) => [{ dtype: 'float32', shape: (matmul.infer(ctx)[0]!).shape }],
    flops: (i, o, a, sym) => matmul.flops!(i, o, a, sym),
    vjp: 'inference-only',
  },
  /** Conv of integer tensors, int32 out; counted as the Conv it replaces */
  ConvInteger: {
    attrs: conv.attrs,
    infer: (ctx) => [{ dtype: 'int32', shape: conv.infer(ctx)[0]!.shape }],
    flops: conv.flops,
    vjp: 'inference-only',
  },
  /**
   * ONNX Runtime's QLinearConv (com.microsoft, CPU) on channels-last maps: uint8 x (N, H, W, C) at
   * (x_scale, x_zero_point), int8 w (O, C, kh, kw) with per-channel w_scale, int32 bias, output
   * requantized to uint8 (N, H', W', O) at (y_scale, y_zero_point); a zero point of 0 clamps at
   * zero, which is a ReLU. Inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B.
   */
  QLinearConv: {
    domain: 'com.microsoft',
    attrs: { ...conv.attrs, channels_last: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0).shape;
      if (x.length !== 4 || ctx.attrs.channels_last !== 1) fail(ctx, 'x must be a channels-last (N, H, W, C) map');
      const asNchw = { ...req(ctx, 0), shape: [x[0]!, x[3]!, x[1]!, x[2]!] };
      const [n, o, h, w] = conv.infer({ ...ctx, inputs: [asNchw, ctx.inputs[3]] })[0]!.shape;
      return [{ dtype: 'uint8', shape: [n!, h!, w!, o!] }];
    },
    flops: (i, o, a, sym) => {
      const [n, h, w, c] = i[0]!;
      const [on, oh, ow, oc] = o[0]!;
      return conv.flops!([[n!, c!, h!, w!], i[3]!], [[on!, oc!, oh!, ow!]], a, sym);
    },
    vjp: 'inference-only',
  },
  QuantizeLinear: {
    attrs: { axis: 'int', saturate: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 2).dtype, shape: [...req(ctx, 0).shape] }],
    vjp: 'inference-only',
  },
  DequantizeLinear: {
    attrs: { axis: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 1).dtype, shape: [...req(ctx, 0).shape] }],
    vjp: 'inference-only',
  },
} satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<TensorType, number> = { float32: 1, float64: 11, bool: 9, int64: 7, uint8: 2, int8: 3, int32: 6, float16: 10 };

/** FLOPs of a whole graph with its symbolic dims given values (e.g. {batch: 1}). */
export function graphFlops(graph: { nodes: readonly Node[]; shape(name: string): Shape }, symbols: Record<string, number>): number {
  const sym = (d: Dim): number => concreteDim(d, symbols);
  let total = 0;
  for (const node of graph.nodes) {
    const spec: OpSpec = OPS[node.op];
    if (!spec.flops) continue;
    total += spec.flops(
      node.inputs.map((i) => (i ? graph.shape(i) : [])),
      node.outputs.map((o) => graph.shape(o)),
      node.attrs,
      sym,
    );
  }
  return total;
}
