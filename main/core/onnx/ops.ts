/**
 * The op table: one entry per primitive op, holding its ONNX name, attribute schema, shape rule and
 * FLOP count. Reverse-mode rules are added beside these (one VJP per op) by the autodiff module, so
 * everything an op means lives in one row. Semantics are ONNX opset 20's.
 */
import { divDims, mulDims, numelOf, sameDim, shapeString, concreteDim, type TensorType, type Dim, type Graph, type Shape, type ValueInfo } from './ir.ts';

export type AttrType = 'int' | 'float' | 'ints' | 'floats' | 'string';
export type AttrValue = number | number[] | string;

export interface InferContext {
  op: OpName;
  /** undefined for an omitted optional input ('') */
  inputs: (ValueInfo | undefined)[];
  attrs: Record<string, AttrValue>;
  graph: Graph;
  outputCount: number;
}

export interface OutputType {
  dtype: TensorType;
  shape: Shape;
}

export interface OpSpec {
  /** attribute name → type (ONNX needs the type; JS numbers don't carry int vs float) */
  attrs: Record<string, AttrType>;
  /** operator-set domain when not the default ONNX one ('com.microsoft' for ONNX Runtime's contrib ops) */
  domain?: string;
  infer(ctx: InferContext): OutputType[];
  /** floating-point operations for one evaluation, symbols resolved by `sym` */
  flops?(inputs: Shape[], outputs: Shape[], attrs: Record<string, AttrValue>, sym: (d: Dim) => number): number;
}

// ---- helpers for shape rules ----

function fail(ctx: InferContext, problem: string): never {
  throw new Error(`${ctx.op}: ${problem} (inputs ${ctx.inputs.map((i) => (i ? shapeString(i.shape) : '-')).join(', ')})`);
}

function req(ctx: InferContext, i: number): ValueInfo {
  const v = ctx.inputs[i];
  if (!v) fail(ctx, `input ${i} is required`);
  return v;
}

function norm(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
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

const unary: OpSpec = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: [...req(ctx, 0).shape] }],
  flops: elementwiseFlops,
};

const binary: OpSpec = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape]) }],
  flops: elementwiseFlops,
};

const compare: OpSpec = {
  attrs: {},
  infer: (ctx) => [{ dtype: 'bool', shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape]) }],
};

const variadic: OpSpec = {
  attrs: {},
  infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, ctx.inputs.map((_, i) => req(ctx, i).shape)) }],
  flops: elementwiseFlops,
};

function reduce(ctx: InferContext): OutputType[] {
  const x = req(ctx, 0);
  const keep = (ctx.attrs.keepdims ?? 1) === 1;
  const rank = x.shape.length;
  const axes = ctx.inputs[1] ? constInts(ctx, 1).map((a) => norm(a, rank)) : x.shape.map((_, i) => i);
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

const reduceSpec: OpSpec = {
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

const poolSpec: OpSpec = {
  attrs: { kernel_shape: 'ints', strides: 'ints', pads: 'ints', ceil_mode: 'int', count_include_pad: 'int', auto_pad: 'string', dilations: 'ints', storage_order: 'int' },
  infer: poolInfer,
  flops: (_i, o, a, sym) => o[0]!.reduce<number>((n, d) => n * sym(d), 1) * (a.kernel_shape as number[]).reduce((p, k) => p * k, 1),
};

const matmul: OpSpec = {
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

const conv: OpSpec = {
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

// ---- the table ----

export const OPS = {
  Identity: unary,
  Neg: unary,
  Abs: unary,
  Exp: unary,
  Log: unary,
  Sqrt: unary,
  Erf: unary,
  Tanh: unary,
  Sigmoid: unary,
  Relu: unary,
  Sign: unary,
  Gelu: { attrs: { approximate: 'string' }, infer: unary.infer, flops: elementwiseFlops },
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Pow: binary,
  Equal: compare,
  Greater: compare,
  Less: compare,
  Max: variadic,
  Min: variadic,
  Where: {
    attrs: {},
    infer: (ctx) => [{ dtype: req(ctx, 1).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, req(ctx, 1).shape, req(ctx, 2).shape]) }],
  },
  Cast: {
    attrs: { to: 'int' },
    infer: (ctx) => {
      const to = ctx.attrs.to as number;
      const dtype = (Object.entries(ONNX_DTYPE).find(([, v]) => v === to)?.[0] as TensorType | undefined) ?? fail(ctx, `unsupported cast target ${to}`);
      return [{ dtype, shape: [...req(ctx, 0).shape] }];
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
  },
  /**
   * ONNX Runtime's fused attention (com.microsoft, inference graphs only, no VJP rule):
   * q (N, Lq, D), k and v (N, L, D) → softmax(q kᵀ · scale) v per head, (N, Lq, D).
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
  },
  MatMul: matmul,
  ReduceSum: reduceSpec,
  /** Running sum along the axis given as a constant int64 input. */
  CumSum: {
    attrs: { exclusive: 'int', reverse: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const axis = constInts(ctx, 1);
      if (axis.length !== 1 || norm(axis[0]!, x.shape.length) < 0 || norm(axis[0]!, x.shape.length) >= x.shape.length) fail(ctx, 'the axis must be one valid axis');
      return [{ dtype: x.dtype, shape: [...x.shape] }];
    },
    flops: elementwiseFlops,
  },
  ReduceMean: reduceSpec,
  ReduceMax: reduceSpec,
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
  },
  Transpose: {
    attrs: { perm: 'ints' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const perm = (ctx.attrs.perm as number[] | undefined) ?? x.shape.map((_, i) => x.shape.length - 1 - i);
      if (perm.length !== x.shape.length) fail(ctx, `perm [${perm}] does not match the rank`);
      return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
    },
  },
  Concat: {
    attrs: { axis: 'int' },
    infer: (ctx) => {
      const first = req(ctx, 0);
      const axis = norm(ctx.attrs.axis as number, first.shape.length);
      const shape = [...first.shape];
      for (let i = 1; i < ctx.inputs.length; i++) {
        const s = req(ctx, i).shape;
        if (s.length !== shape.length || s.some((d, k) => k !== axis && !sameDim(d, shape[k]!))) fail(ctx, 'shapes differ outside the axis');
        shape[axis] = typeof shape[axis] === 'number' && typeof s[axis] === 'number' ? shape[axis] + s[axis] : fail(ctx, 'symbolic concat axis');
      }
      return [{ dtype: first.dtype, shape }];
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
        const axis = norm(a, shape.length);
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
  },
  Split: {
    attrs: { axis: 'int', num_outputs: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const axis = norm((ctx.attrs.axis as number | undefined) ?? 0, x.shape.length);
      const sizes = constInts(ctx, 1);
      if (sizes.length !== ctx.outputCount) fail(ctx, 'one size per output');
      if (sizes.reduce((a, b) => a + b, 0) !== x.shape[axis]) fail(ctx, `sizes [${sizes}] do not sum to the axis`);
      return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? s : d)) }));
    },
  },
  Gather: {
    attrs: { axis: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const idx = req(ctx, 1);
      const axis = norm((ctx.attrs.axis as number | undefined) ?? 0, x.shape.length);
      return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
    },
  },
  Expand: {
    attrs: {},
    infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: broadcast(ctx, [req(ctx, 0).shape, constInts(ctx, 1)]) }],
  },
  Conv: conv,
  /** Only as the adjoint of Conv (autodiff); output size from output_padding, no output_shape. */
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
  },
  MaxPool: poolSpec,
  AveragePool: poolSpec,
  Resize: {
    attrs: { mode: 'string', coordinate_transformation_mode: 'string', nearest_mode: 'string', cubic_coeff_a: 'float', antialias: 'int', exclude_outside: 'int' },
    infer: (ctx) => {
      const x = req(ctx, 0);
      const scalesName = req(ctx, 2).name;
      const scales = ctx.graph.constantFloats(scalesName) ?? fail(ctx, 'scales must be a constant');
      return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (scales[i] === 1 ? d : typeof d === 'number' ? Math.floor(d * scales[i]!) : fail(ctx, 'resizing a symbolic axis'))) }];
    },
    flops: (_i, o, _a, sym) => 4 * o[0]!.reduce<number>((n, d) => n * sym(d), 1),
  },
  Softmax: { attrs: { axis: 'int' }, infer: unary.infer, flops: (_i, o, _a, sym) => 3 * elementwiseFlops(_i, o, _a, sym) },
  LayerNormalization: {
    attrs: { axis: 'int', epsilon: 'float', stash_type: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 0).dtype, shape: [...req(ctx, 0).shape] }],
    flops: (_i, o, _a, sym) => 8 * elementwiseFlops(_i, o, _a, sym),
  },
  BatchNormalization: {
    attrs: { epsilon: 'float', momentum: 'float', training_mode: 'int' },
    infer: (ctx) => [{ dtype: 'float32', shape: [...req(ctx, 0).shape] }],
    flops: (_i, o, _a, sym) => 2 * elementwiseFlops(_i, o, _a, sym),
  },
  // ---- integer and quantization ops (int8 inference graphs, onnx/quantize.ts; no VJP rules) ----
  /** float → uint8 with a per-tensor scale and zero point computed from the tensor's own range */
  DynamicQuantizeLinear: {
    attrs: {},
    infer: (ctx) => {
      const x = req(ctx, 0);
      return [{ dtype: 'uint8', shape: [...x.shape] }, { dtype: 'float32', shape: [] }, { dtype: 'uint8', shape: [] }];
    },
    flops: (_i, o, _a, sym) => 3 * elementwiseFlops(_i, o, _a, sym),
  },
  /** (A − a_zero_point)(B − b_zero_point) in int32; counted as the MatMul it replaces */
  MatMulInteger: {
    attrs: {},
    infer: (ctx) => [{ dtype: 'int32', shape: (matmul.infer(ctx)[0]!).shape }],
    flops: (i, o, a, sym) => matmul.flops!(i, o, a, sym),
  },
  /** Conv of integer tensors, int32 out; counted as the Conv it replaces */
  ConvInteger: {
    attrs: conv.attrs,
    infer: (ctx) => [{ dtype: 'int32', shape: conv.infer(ctx)[0]!.shape }],
    flops: conv.flops,
  },
  QuantizeLinear: {
    attrs: { axis: 'int', saturate: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 2).dtype, shape: [...req(ctx, 0).shape] }],
  },
  DequantizeLinear: {
    attrs: { axis: 'int' },
    infer: (ctx) => [{ dtype: req(ctx, 1).dtype, shape: [...req(ctx, 0).shape] }],
  },
} satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<TensorType, number> = { float32: 1, float64: 11, bool: 9, int64: 7, uint8: 2, int8: 3, int32: 6, float16: 10 };

/** FLOPs of a whole graph with its symbolic dims given values (e.g. {batch: 1}). */
export function graphFlops(graph: Graph, symbols: Record<string, number>): number {
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

