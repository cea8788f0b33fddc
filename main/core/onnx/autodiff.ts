/**
 * Reverse-mode automatic differentiation over the graph IR, emitting the backward pass as more
 * nodes of the same graph (standard ONNX ops only: onnxruntime-node has none of ORT's *Grad
 * training ops). One table, one vector-Jacobian rule per primitive op, in the spirit of PyTorch's
 * derivatives.yaml: the forward semantics and shape rule of each op live in ops.ts, its VJP here.
 *
 * Backward graphs need static shapes: training graphs are built for a fixed batch size.
 */
import type { TensorType, Graph, Node } from './ir.ts';
import type { OpName } from './ops.ts';

export interface VjpArgs {
  g: Graph;
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

/** Returns one gradient per input (undefined where none is needed or none exists). */
export type VjpRule = (a: VjpArgs) => (string | undefined)[];

// ---- shape helpers (backward graphs are static) ----

export function staticShape(g: Graph, name: string): number[] {
  const shape = g.shape(name);
  return shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`autodiff needs static shapes; "${name}" has symbolic dim "${d}" (build the training graph for a fixed batch)`);
    return d;
  });
}

const dtypeOf = (g: Graph, name: string): TensorType => g.info(name).dtype;

const ELEMENT_ARRAYS: Partial<Record<TensorType, (n: number, v: number) => Float32Array | Float64Array>> = {
  float32: (n, v) => new Float32Array(n).fill(v),
  float64: (n, v) => new Float64Array(n).fill(v),
};

/** A scalar constant of the same floating type as `like` (float64 graphs are used by the gradient checks). */
export function scalarLike(g: Graph, value: number, like: string): string {
  const dtype = dtypeOf(g, like);
  if (dtype === 'float32') return g.scalar(value);
  const make = ELEMENT_ARRAYS[dtype];
  if (!make) throw new Error(`no floating scalar of type ${dtype}`);
  return g.constant(make(1, value) as Float32Array, [], dtype, `${dtype}(${value})`, true);
}

function zerosLike(g: Graph, like: string): string {
  const shape = staticShape(g, like);
  const make = ELEMENT_ARRAYS[dtypeOf(g, like)]!;
  return g.constant(make(shape.reduce((a, b) => a * b, 1), 0) as Float32Array, shape, dtypeOf(g, like));
}

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

/** Sums a broadcast gradient back to the shape of the operand it came from. */
export function unbroadcast(g: Graph, grad: string, target: readonly number[]): string {
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

function expandTo(g: Graph, value: string, shape: readonly number[]): string {
  return g.op('Expand', [value, g.ints(shape)]);
}

/** The shape a reduction had with keepdims=1. */
function keptShape(inShape: readonly number[], axes: readonly number[]): number[] {
  return inShape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceAxes(g: Graph, node: Node, rank: number): number[] {
  const axesInput = node.inputs[1];
  if (!axesInput) return Array.from({ length: rank }, (_, i) => i);
  const axes = g.constantInts(axesInput);
  if (!axes) throw new Error(`${node.op}: axes must be constant to differentiate`);
  return axes.map((a) => normAxis(a, rank));
}

function swapLast(g: Graph, value: string): string {
  const rank = g.shape(value).length;
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 1] = rank - 2;
  perm[rank - 2] = rank - 1;
  return g.transpose(value, perm);
}

const neg = (g: Graph, v: string): string => g.op('Neg', [v]);

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

function matrixConstant(g: Graph, values: Float64Array, rows: number, cols: number, transpose: boolean, like: string): string {
  const dtype = dtypeOf(g, like);
  const out = dtype === 'float64' ? new Float64Array(rows * cols) : new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[transpose ? c * rows + r : r * cols + c] = values[r * cols + c]!;
  return g.constant(out as Float32Array, transpose ? [cols, rows] : [rows, cols], dtype);
}

// ---- the table ----

const ints = (v: unknown, fallback: number[]): number[] => (Array.isArray(v) ? (v as number[]) : fallback);

export const VJP: Partial<Record<OpName, VjpRule>> = {
  Identity: ({ gy }) => [gy[0]],
  Neg: ({ g, gy }) => [neg(g, gy[0]!)],
  Abs: ({ g, x, gy }) => [g.mul(gy[0]!, g.op('Sign', [x[0]!]))],
  Exp: ({ g, y, gy }) => [g.mul(gy[0]!, y[0]!)],
  Log: ({ g, x, gy }) => [g.div(gy[0]!, x[0]!)],
  Sqrt: ({ g, y, gy }) => [g.div(g.mul(gy[0]!, scalarLike(g, 0.5, y[0]!)), y[0]!)],
  Erf: ({ g, x, gy }) => {
    const slope = g.mul(scalarLike(g, 2 / Math.sqrt(Math.PI), x[0]!), g.op('Exp', [neg(g, g.mul(x[0]!, x[0]!))]));
    return [g.mul(gy[0]!, slope)];
  },
  Tanh: ({ g, y, gy }) => [g.mul(gy[0]!, g.sub(scalarLike(g, 1, y[0]!), g.mul(y[0]!, y[0]!)))],
  Sigmoid: ({ g, y, gy }) => [g.mul(gy[0]!, g.mul(y[0]!, g.sub(scalarLike(g, 1, y[0]!), y[0]!)))],
  Relu: ({ g, x, gy }) => [g.op('Where', [g.op('Greater', [x[0]!, scalarLike(g, 0, x[0]!)]), gy[0]!, scalarLike(g, 0, x[0]!)])],
  Gelu: ({ g, node, x, gy }) => {
    if ((node.attrs.approximate ?? 'none') !== 'none') throw new Error('Gelu: only the exact (erf) form is differentiated');
    const v = x[0]!;
    const cdf = g.mul(scalarLike(g, 0.5, v), g.add(scalarLike(g, 1, v), g.op('Erf', [g.mul(v, scalarLike(g, Math.SQRT1_2, v))])));
    const pdf = g.mul(scalarLike(g, 1 / Math.sqrt(2 * Math.PI), v), g.op('Exp', [g.mul(g.mul(v, v), scalarLike(g, -0.5, v))]));
    return [g.mul(gy[0]!, g.add(cdf, g.mul(v, pdf)))];
  },
  Add: ({ g, x, gy, needs }) => [
    needs[0] ? unbroadcast(g, gy[0]!, staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, gy[0]!, staticShape(g, x[1]!)) : undefined,
  ],
  Sub: ({ g, x, gy, needs }) => [
    needs[0] ? unbroadcast(g, gy[0]!, staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, neg(g, gy[0]!), staticShape(g, x[1]!)) : undefined,
  ],
  Mul: ({ g, x, gy, needs }) => [
    needs[0] ? unbroadcast(g, g.mul(gy[0]!, x[1]!), staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, g.mul(gy[0]!, x[0]!), staticShape(g, x[1]!)) : undefined,
  ],
  Div: ({ g, x, y, gy, needs }) => [
    needs[0] ? unbroadcast(g, g.div(gy[0]!, x[1]!), staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, neg(g, g.div(g.mul(gy[0]!, y[0]!), x[1]!)), staticShape(g, x[1]!)) : undefined,
  ],
  Pow: ({ g, x, y, gy, needs }) => {
    const base = x[0]!;
    const exponent = x[1]!;
    const dBase = needs[0]
      ? unbroadcast(g, g.mul(gy[0]!, g.mul(exponent, g.op('Pow', [base, g.sub(exponent, scalarLike(g, 1, exponent))]))), staticShape(g, base))
      : undefined;
    const dExp = needs[1] ? unbroadcast(g, g.mul(gy[0]!, g.mul(y[0]!, g.op('Log', [base]))), staticShape(g, exponent)) : undefined;
    return [dBase, dExp];
  },
  Max: ({ g, x, gy, needs }) => binaryChoice(g, x, gy[0]!, needs, 'Greater'),
  Min: ({ g, x, gy, needs }) => binaryChoice(g, x, gy[0]!, needs, 'Less'),
  Where: ({ g, x, gy, needs }) => {
    const zero = scalarLike(g, 0, gy[0]!);
    return [
      undefined,
      needs[1] ? unbroadcast(g, g.op('Where', [x[0]!, gy[0]!, zero]), staticShape(g, x[1]!)) : undefined,
      needs[2] ? unbroadcast(g, g.op('Where', [x[0]!, zero, gy[0]!]), staticShape(g, x[2]!)) : undefined,
    ];
  },
  Cast: ({ g, node, x, gy }) => {
    const from = dtypeOf(g, x[0]!);
    const to = dtypeOf(g, node.outputs[0]!);
    if (from === to) return [gy[0]];
    if ((from === 'float32' || from === 'float64') && (to === 'float32' || to === 'float64')) {
      return [g.op('Cast', [gy[0]!], { to: from === 'float32' ? 1 : 11 })];
    }
    return [undefined];
  },
  MatMul: ({ g, x, gy, needs }) => {
    const [a, b] = [x[0]!, x[1]!];
    return [
      needs[0] ? unbroadcast(g, g.matmul(gy[0]!, swapLast(g, b)), staticShape(g, a)) : undefined,
      needs[1] ? unbroadcast(g, g.matmul(swapLast(g, a), gy[0]!), staticShape(g, b)) : undefined,
    ];
  },
  /**
   * Y = op(A)·op(B) + C (alpha = beta = 1). Each adjoint is again a Gemm with the transposes folded
   * into its flags, so a constant B (a frozen (out, in) Linear weight read with transB) is read
   * as stored in both directions and ONNX Runtime prepacks it without a transposed copy.
   */
  Gemm: ({ g, node, x, gy, needs }) => {
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
  ReduceSum: ({ g, node, x, gy }) => {
    const shape = staticShape(g, x[0]!);
    const axes = reduceAxes(g, node, shape.length);
    return [expandTo(g, g.reshape(gy[0]!, keptShape(shape, axes)), shape)];
  },
  ReduceMean: ({ g, node, x, gy }) => {
    const shape = staticShape(g, x[0]!);
    const axes = reduceAxes(g, node, shape.length);
    const count = axes.reduce((n, a) => n * shape[a]!, 1);
    const scaled = g.mul(g.reshape(gy[0]!, keptShape(shape, axes)), scalarLike(g, 1 / count, gy[0]!));
    return [expandTo(g, scaled, shape)];
  },
  /** The gradient goes to every element equal to the maximum (ties share it in full, unlike PyTorch's first-index choice; ties are measure-zero in float data). */
  ReduceMax: ({ g, node, x, y, gy }) => {
    const shape = staticShape(g, x[0]!);
    const axes = reduceAxes(g, node, shape.length);
    const kept = keptShape(shape, axes);
    const isMax = g.op('Equal', [x[0]!, g.reshape(y[0]!, kept)]);
    return [g.op('Where', [isMax, expandTo(g, g.reshape(gy[0]!, kept), shape), scalarLike(g, 0, gy[0]!)])];
  },
  Reshape: ({ g, x, gy }) => [g.reshape(gy[0]!, staticShape(g, x[0]!)), undefined],
  Transpose: ({ g, node, x, gy }) => {
    const rank = g.shape(x[0]!).length;
    const perm = ints(node.attrs.perm, Array.from({ length: rank }, (_, i) => rank - 1 - i));
    const inverse = new Array<number>(rank);
    perm.forEach((p, i) => (inverse[p] = i));
    return [g.transpose(gy[0]!, inverse)];
  },
  Expand: ({ g, x, gy }) => [unbroadcast(g, gy[0]!, staticShape(g, x[0]!)), undefined],
  Concat: ({ g, node, x, gy, needs }) => {
    const rank = g.shape(x[0]!).length;
    const axis = normAxis(node.attrs.axis as number, rank);
    const sizes = x.map((v) => staticShape(g, v)[axis]!);
    const parts = sizes.length === 1 ? [gy[0]!] : g.split(gy[0]!, sizes, axis);
    return parts.map((p, i) => (needs[i] ? p : undefined));
  },
  Split: ({ g, node, y, gy }) => {
    const rank = g.shape(y[0]!).length;
    const axis = normAxis((node.attrs.axis as number | undefined) ?? 0, rank);
    const parts = y.map((out, i) => gy[i] ?? zerosLike(g, out));
    return [parts.length === 1 ? parts[0]! : g.concat(parts, axis), undefined];
  },
  /** The adjoint of a running sum is the running sum taken from the other end. */
  CumSum: ({ g, node, gy }) => [g.op('CumSum', [gy[0]!, node.inputs[1]!], { exclusive: (node.attrs.exclusive as number | undefined) ?? 0, reverse: node.attrs.reverse === 1 ? 0 : 1 }), undefined],
  Slice: ({ g, node, x, gy }) => {
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
  Pad: ({ g, node, x, gy }) => {
    if ((node.attrs.mode ?? 'constant') !== 'constant') throw new Error('Pad: only constant padding is differentiated');
    const shape = staticShape(g, x[0]!);
    const pads = g.constantInts(node.inputs[1]!)!;
    if (pads.some((p) => p < 0)) throw new Error('Pad: negative pads (cropping) are not differentiated');
    const rank = shape.length;
    const axes = shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[i + rank] !== 0);
    if (!axes.length) return [gy[0]];
    return [g.slice(gy[0]!, axes.map((a) => pads[a]!), axes.map((a) => pads[a]! + shape[a]!), axes)];
  },
  Softmax: ({ g, node, y, gy }) => {
    const axis = (node.attrs.axis as number | undefined) ?? -1;
    const dot = g.op('ReduceSum', [g.mul(gy[0]!, y[0]!), g.ints([axis])], { keepdims: 1 });
    return [g.mul(y[0]!, g.sub(gy[0]!, dot))];
  },
  LayerNormalization: ({ g, node, x, gy, needs }) => {
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
  /** Inference-mode BatchNormalization (running statistics are constants). Training graphs compose batch statistics from primitives instead. */
  BatchNormalization: ({ g, node, x, gy, needs }) => {
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
  Conv: ({ g, node, x, gy, needs }) => {
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
  Resize: ({ g, node, x, gy }) => {
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
};

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
function convInputGrad(g: Graph, gy: string, weight: string, c: ConvGeometry): string {
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
function convWeightGrad(g: Graph, input: string, gy: string, c: ConvGeometry): string {
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
function binaryChoice(g: Graph, x: string[], gy: string, needs: boolean[], comparison: 'Greater' | 'Less'): (string | undefined)[] {
  if (x.length !== 2) throw new Error('Max/Min: only the two-input form is differentiated');
  const secondWins = g.op(comparison === 'Greater' ? 'Less' : 'Greater', [x[0]!, x[1]!]);
  const zero = scalarLike(g, 0, gy);
  return [
    needs[0] ? unbroadcast(g, g.op('Where', [secondWins, zero, gy]), staticShape(g, x[0]!)) : undefined,
    needs[1] ? unbroadcast(g, g.op('Where', [secondWins, gy, zero]), staticShape(g, x[1]!)) : undefined,
  ];
}

/**
 * A composite with its own backward rule (JAX's custom_vjp): when `output` receives a gradient,
 * `rule` maps it straight to gradients of `inputs`, and the composite's inner nodes get none.
 * Used where the closed form is markedly more accurate than differentiating the composition
 * (train-mode BatchNorm, whose composed backward cancels three paths in float32).
 */
export interface CustomVjp {
  inputs: string[];
  rule: (gy: string) => (string | undefined)[];
}

const customRules = new WeakMap<Graph, Map<string, CustomVjp>>();

export function defineCustomVjp(g: Graph, output: string, custom: CustomVjp): void {
  let rules = customRules.get(g);
  if (!rules) customRules.set(g, (rules = new Map()));
  rules.set(output, custom);
}

const DIFFERENTIABLE: ReadonlySet<TensorType> = new Set<TensorType>(['float32', 'float64']);

export interface GradientOptions {
  /** gradient of the loss itself (default: ones of the loss's shape) */
  seed?: string;
  /** prefix for the names of the backward values */
  scope?: string;
}

/**
 * Appends the backward pass of `loss` to `g` and returns, for each name in `wrt`, the value holding
 * ∂loss/∂name — or undefined when `loss` does not depend on it (e.g. the official model's unused up4).
 * Only nodes on a path from some `wrt` to `loss` are differentiated, so frozen weights and the
 * data input cost nothing in the backward pass.
 */
export function gradients(g: Graph, loss: string, wrt: readonly string[], opts: GradientOptions = {}): Map<string, string | undefined> {
  return g.scope(opts.scope ?? 'grad', () => {
    const nodes = [...g.nodes];
    const lossProducer = nodes.findIndex((n) => n.outputs.includes(loss));
    const requires = new Set(wrt);
    for (const node of nodes) {
      if (node.inputs.some((i) => i && requires.has(i))) {
        for (const o of node.outputs) if (DIFFERENTIABLE.has(g.info(o).dtype)) requires.add(o);
      }
    }
    const contributes = new Set([loss]);
    for (let i = lossProducer; i >= 0; i--) {
      const node = nodes[i]!;
      if (node.outputs.some((o) => contributes.has(o))) for (const input of node.inputs) if (input) contributes.add(input);
    }

    const pending = new Map<string, string[]>();
    const push = (value: string, grad: string): void => {
      const list = pending.get(value);
      if (list) list.push(grad);
      else pending.set(value, [grad]);
    };
    const total = (value: string): string | undefined => {
      const list = pending.get(value);
      if (!list?.length) return undefined;
      const sum = list.reduce((acc, v) => g.add(acc, v));
      pending.set(value, [sum]);
      return sum;
    };

    push(loss, opts.seed ?? ones(g, loss));
    const custom = customRules.get(g);
    for (let i = lossProducer; i >= 0; i--) {
      const node = nodes[i]!;
      const gy = node.outputs.map(total);
      if (gy.every((v) => v === undefined)) continue;
      const composite = node.outputs.length === 1 ? custom?.get(node.outputs[0]!) : undefined;
      if (composite) {
        const grads = composite.rule(gy[0]!);
        composite.inputs.forEach((input, k) => {
          const grad = grads[k];
          if (grad && requires.has(input) && contributes.has(input)) push(input, grad);
        });
        continue;
      }
      const needs = node.inputs.map((input) => Boolean(input) && requires.has(input) && contributes.has(input) && DIFFERENTIABLE.has(g.info(input).dtype));
      if (!needs.some(Boolean)) continue;
      const rule = VJP[node.op];
      if (!rule) throw new Error(`no vector-Jacobian rule for ${node.op} (producing ${node.outputs.join(', ')})`);
      const grads = rule({ g, node, x: node.inputs, y: node.outputs, gy, needs });
      node.inputs.forEach((input, k) => {
        const grad = grads[k];
        if (needs[k] && grad) push(input, grad);
      });
    }
    return new Map(wrt.map((name) => [name, total(name)]));
  });
}

function ones(g: Graph, like: string): string {
  const shape = staticShape(g, like);
  const make = ELEMENT_ARRAYS[dtypeOf(g, like)];
  if (!make) throw new Error(`cannot seed a gradient of type ${dtypeOf(g, like)}`);
  return g.constant(make(shape.reduce((a, b) => a * b, 1), 1) as Float32Array, shape, dtypeOf(g, like));
}
