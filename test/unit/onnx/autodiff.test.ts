/**
 * Every vector-Jacobian rule against central finite differences, run through onnxruntime-node.
 * Graphs are float64 where ONNX Runtime's CPU kernels support it (tight tolerance); the ops that
 * only have float32 kernels (Conv, ConvTranspose, Resize, Gelu, Erf) are checked in float32 with
 * a tolerance that states the float32 rounding of the difference quotient.
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/core/onnx/autodiff.ts';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { OPS, linearInterpolationMatrix, type OpName } from '../../../main/core/onnx/ops.ts';
import type { TensorType } from '../../../main/core/onnx/shape.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

type Build = (g: Graph, inputs: string[]) => string;

interface Case {
  name: string;
  op: OpName;
  shapes: number[][];
  build: Build;
  dtype?: TensorType;
  /** inputs that must stay positive (log, sqrt, pow base, division) */
  positive?: number[];
  /** inputs that are not differentiated (e.g. masks) */
  constant?: number[];
}

const ortType = (dtype: TensorType): 'float32' | 'float64' => (dtype === 'float64' ? 'float64' : 'float32');
const makeArray = (dtype: TensorType, n: number): Float32Array | Float64Array => (dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));

async function session(g: Graph): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(joinChunks(serializeModel(g)), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
}

/** Builds `loss = Σ r ⊙ op(inputs)` with its gradients w.r.t. the differentiable inputs. */
function buildCase(c: Case, dtype: TensorType, weights: Float64Array[]) {
  const g = new Graph();
  const inputs = c.shapes.map((shape, i) => g.input(`x${i}`, dtype, shape));
  const y = c.build(g, inputs);
  const yShape = g.shape(y) as number[];
  const r = makeArray(dtype, yShape.reduce((a, b) => a * b, 1));
  const rng = mulberry32(99);
  for (let i = 0; i < r.length; i++) r[i] = rng() * 2 - 1;
  weights.push(Float64Array.from(r));
  const rc = g.constant(r as Float32Array, yShape, dtype);
  const loss = g.op('ReduceSum', [g.mul(y, rc)], { keepdims: 0 });
  g.output('loss', loss);
  const wrt = inputs.filter((_, i) => !c.constant?.includes(i));
  const grads = gradients(g, 'loss', wrt);
  const names: string[] = [];
  for (const name of wrt) {
    const grad = grads.get(name);
    if (!grad) throw new Error(`no gradient for ${name}`);
    names.push(g.output(`d_${name}`, grad));
  }
  return { g, wrt, gradNames: names };
}

function randomInputs(c: Case, dtype: TensorType, seed: number): (Float32Array | Float64Array)[] {
  const rng = mulberry32(seed);
  return c.shapes.map((shape, i) => {
    const a = makeArray(dtype, shape.reduce((p, d) => p * d, 1));
    for (let k = 0; k < a.length; k++) a[k] = c.positive?.includes(i) ? 0.5 + rng() : rng() * 2 - 1;
    return a;
  });
}

async function check(c: Case): Promise<{ dtype: TensorType; worst: number }> {
  let dtype: TensorType = c.dtype ?? 'float64';
  let built;
  let sess: ort.InferenceSession;
  try {
    built = buildCase(c, dtype, []);
    sess = await session(built.g);
  } catch (err) {
    if (dtype !== 'float64' || !/implementation|Type Error|type/i.test(String(err))) throw err;
    dtype = 'float32';
    built = buildCase(c, dtype, []);
    sess = await session(built.g);
  }
  const values = randomInputs(c, dtype, 7);
  const feeds = (vals: (Float32Array | Float64Array)[]): Record<string, ort.Tensor> =>
    Object.fromEntries(vals.map((v, i) => [`x${i}`, new ort.Tensor(ortType(dtype), v, c.shapes[i]!)]));
  const base = await sess.run(feeds(values));

  const eps = dtype === 'float64' ? 1e-6 : 1e-2;
  const tolerance = dtype === 'float64' ? 1e-6 : 2e-3;
  let worst = 0;
  const rng = mulberry32(1234);
  for (let trial = 0; trial < 3; trial++) {
    // directional derivative along a random direction in all differentiable inputs at once
    const direction = values.map((v, i) => {
      const d = makeArray(dtype, v.length);
      if (!c.constant?.includes(i)) for (let k = 0; k < d.length; k++) d[k] = rng() * 2 - 1;
      return d;
    });
    const shifted = (sign: number) => values.map((v, i) => {
      const out = makeArray(dtype, v.length);
      for (let k = 0; k < v.length; k++) out[k] = v[k]! + sign * eps * direction[i]![k]!;
      return out;
    });
    const plus = (await sess.run(feeds(shifted(1)))).loss!.data as Float64Array;
    const minus = (await sess.run(feeds(shifted(-1)))).loss!.data as Float64Array;
    const numeric = (plus[0]! - minus[0]!) / (2 * eps);
    let analytic = 0;
    built.wrt.forEach((name, j) => {
      const index = Number(name.slice(1));
      const grad = base[built.gradNames[j]!]!.data as Float64Array;
      const d = direction[index]!;
      for (let k = 0; k < d.length; k++) analytic += grad[k]! * d[k]!;
    });
    const error = Math.abs(numeric - analytic) / Math.max(1, Math.abs(numeric));
    worst = Math.max(worst, error);
  }
  expect(worst, `${c.name} (${dtype}): relative error of the directional derivative`).toBeLessThan(tolerance);
  return { dtype, worst };
}

const unaryCase = (op: OpName, extra: Partial<Case> = {}): Case => ({ name: op, op, shapes: [[2, 3, 4]], build: (g, [a]) => g.op(op, [a!]), ...extra });

const CASES: Case[] = [
  unaryCase('Identity'),
  unaryCase('Neg'),
  unaryCase('Abs'),
  unaryCase('Exp'),
  unaryCase('Log', { positive: [0] }),
  unaryCase('Sqrt', { positive: [0] }),
  unaryCase('Erf'),
  unaryCase('Tanh'),
  unaryCase('Sigmoid'),
  unaryCase('Relu'),
  unaryCase('Gelu'),
  { name: 'Add (broadcast)', op: 'Add', shapes: [[2, 3, 4], [3, 1]], build: (g, [a, b]) => g.add(a!, b!) },
  { name: 'Sub (broadcast)', op: 'Sub', shapes: [[4], [2, 3, 4]], build: (g, [a, b]) => g.sub(a!, b!) },
  { name: 'Mul (broadcast)', op: 'Mul', shapes: [[2, 1, 4], [3, 1]], build: (g, [a, b]) => g.mul(a!, b!) },
  { name: 'Div', op: 'Div', shapes: [[2, 3], [2, 3]], positive: [1], build: (g, [a, b]) => g.div(a!, b!) },
  { name: 'Pow', op: 'Pow', shapes: [[2, 3], [1]], positive: [0, 1], build: (g, [a, b]) => g.op('Pow', [a!, b!]) },
  { name: 'Max', op: 'Max', shapes: [[2, 3], [2, 3]], build: (g, [a, b]) => g.op('Max', [a!, b!]) },
  { name: 'Min', op: 'Min', shapes: [[2, 3], [3]], build: (g, [a, b]) => g.op('Min', [a!, b!]) },
  {
    name: 'Where',
    op: 'Where',
    shapes: [[2, 3], [2, 3], [3]],
    constant: [0],
    build: (g, [c, a, b]) => g.op('Where', [g.op('Greater', [c!, g.constant(Float64Array.of(0) as unknown as Float32Array, [], 'float64')]), a!, b!]),
  },
  { name: 'MatMul (batched, broadcast)', op: 'MatMul', shapes: [[2, 3, 4, 5], [5, 2]], build: (g, [a, b]) => g.matmul(a!, b!) },
  { name: 'MatMul (batch both)', op: 'MatMul', shapes: [[3, 2, 4], [3, 4, 2]], build: (g, [a, b]) => g.matmul(a!, b!) },
  { name: 'Gemm transB + bias (linear)', op: 'Gemm', shapes: [[4, 3], [5, 3], [5]], build: (g, [a, b, c]) => g.op('Gemm', [a!, b!, c!], { transB: 1 }) },
  { name: 'Gemm plain, bias row', op: 'Gemm', shapes: [[4, 3], [3, 5], [1, 5]], build: (g, [a, b, c]) => g.op('Gemm', [a!, b!, c!]) },
  { name: 'Gemm transA', op: 'Gemm', shapes: [[3, 4], [3, 5]], build: (g, [a, b]) => g.op('Gemm', [a!, b!], { transA: 1 }) },
  { name: 'Gemm transA transB, bias column', op: 'Gemm', shapes: [[3, 4], [5, 3], [4, 1]], build: (g, [a, b, c]) => g.op('Gemm', [a!, b!, c!], { transA: 1, transB: 1 }) },
  { name: 'ReduceSum', op: 'ReduceSum', shapes: [[2, 3, 4]], build: (g, [a]) => g.op('ReduceSum', [a!, g.ints([1])], { keepdims: 0 }) },
  { name: 'CumSum', op: 'CumSum', shapes: [[2, 5, 3]], build: (g, [a]) => g.op('CumSum', [a!, g.ints([1])]) },
  { name: 'CumSum (exclusive, reverse)', op: 'CumSum', shapes: [[4, 3]], build: (g, [a]) => g.op('CumSum', [a!, g.ints([0])], { exclusive: 1, reverse: 1 }) },
  { name: 'ReduceMean', op: 'ReduceMean', shapes: [[2, 3, 4]], build: (g, [a]) => g.op('ReduceMean', [a!, g.ints([0, 2])], { keepdims: 1 }) },
  { name: 'ReduceMax', op: 'ReduceMax', shapes: [[2, 4, 3]], build: (g, [a]) => g.reduceMax(a!, [1]) },
  { name: 'Reshape', op: 'Reshape', shapes: [[2, 3, 4]], build: (g, [a]) => g.reshape(a!, [4, 6]) },
  { name: 'Transpose', op: 'Transpose', shapes: [[2, 3, 4]], build: (g, [a]) => g.transpose(a!, [2, 0, 1]) },
  { name: 'Expand', op: 'Expand', shapes: [[3, 1]], build: (g, [a]) => g.op('Expand', [a!, g.ints([2, 3, 4])]) },
  { name: 'Concat', op: 'Concat', shapes: [[2, 3], [2, 2]], build: (g, [a, b]) => g.concat([a!, b!], 1) },
  { name: 'Split', op: 'Split', shapes: [[2, 6]], build: (g, [a]) => { const [p, q] = g.split(a!, [2, 4], 1); return g.mul(g.op('ReduceSum', [p!, g.ints([1])], { keepdims: 1 }), q!); } },
  { name: 'Slice', op: 'Slice', shapes: [[4, 5]], build: (g, [a]) => g.slice(a!, [1, 2], [3, 5], [0, 1]) },
  { name: 'Pad', op: 'Pad', shapes: [[2, 3]], build: (g, [a]) => g.pad(a!, [0, 1, 2, 3]) },
  { name: 'Softmax', op: 'Softmax', shapes: [[2, 5]], build: (g, [a]) => g.softmax(a!, -1) },
  {
    name: 'LayerNormalization',
    op: 'LayerNormalization',
    shapes: [[2, 3, 6], [6], [6]],
    build: (g, [x, s, b]) => g.op('LayerNormalization', [x!, s!, b!], { axis: -1, epsilon: 1e-6 }),
  },
  {
    name: 'BatchNormalization (inference)',
    op: 'BatchNormalization',
    shapes: [[2, 3, 4, 4], [3], [3], [3], [3]],
    positive: [4],
    constant: [3, 4],
    build: (g, [x, s, b, m, v]) => g.op('BatchNormalization', [x!, s!, b!, m!, v!], { epsilon: 1e-5 }),
  },
  {
    name: 'Conv 3×3 pad 1 + bias',
    op: 'Conv',
    shapes: [[2, 3, 6, 6], [4, 3, 3, 3], [4]],
    build: (g, [x, w, b]) => g.op('Conv', [x!, w!, b!], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1], dilations: [1, 1] }),
  },
  {
    name: 'Conv 3×3 dilation 3',
    op: 'Conv',
    shapes: [[1, 2, 9, 9], [2, 2, 3, 3]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [3, 3], pads: [3, 3, 3, 3], dilations: [3, 3] }),
  },
  {
    name: 'Conv 1×5 asymmetric pad',
    op: 'Conv',
    shapes: [[1, 2, 5, 7], [3, 2, 1, 5]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [1, 5], pads: [0, 2, 0, 2] }),
  },
  {
    name: 'Conv 1×1 (weight gradient as one product)',
    op: 'Conv',
    shapes: [[3, 4, 5, 6], [2, 4, 1, 1], [2]],
    build: (g, [x, w, b]) => g.op('Conv', [x!, w!, b!], { kernel_shape: [1, 1] }),
  },
  {
    name: 'Conv 3×2 valid, no padding',
    op: 'Conv',
    shapes: [[2, 2, 6, 5], [3, 2, 3, 2]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [3, 2] }),
  },
  {
    name: 'Conv 3×3 uneven pads [2, 0, 0, 1]',
    op: 'Conv',
    shapes: [[1, 2, 5, 6], [2, 2, 3, 3]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [3, 3], pads: [2, 0, 0, 1] }),
  },
  {
    name: 'Conv 1×1 pad 1 (padding beyond the kernel: transposed form)',
    op: 'Conv',
    shapes: [[1, 2, 4, 4], [3, 2, 1, 1]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [1, 1], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv 3×3 stride 2 on an odd size',
    op: 'Conv',
    shapes: [[2, 2, 7, 8], [2, 2, 3, 3]],
    build: (g, [x, w]) => g.op('Conv', [x!, w!], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Conv 7×7 stride 4 pad 3 (patch embed)',
    op: 'Conv',
    shapes: [[1, 3, 18, 18], [2, 3, 7, 7], [2]],
    build: (g, [x, w, b]) => g.op('Conv', [x!, w!, b!], { kernel_shape: [7, 7], strides: [4, 4], pads: [3, 3, 3, 3] }),
  },
  {
    name: 'Resize linear ×2 align_corners',
    op: 'Resize',
    shapes: [[1, 2, 3, 4]],
    build: (g, [x]) => g.op('Resize', [x!, '', g.constant(Float32Array.of(1, 1, 2, 2), [4])], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }),
  },
  {
    name: 'Resize linear ×4 half_pixel',
    op: 'Resize',
    shapes: [[1, 2, 3, 4]],
    build: (g, [x]) => g.op('Resize', [x!, '', g.constant(Float32Array.of(1, 1, 4, 4), [4])], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }),
  },
];

describe('vector-Jacobian rules against finite differences', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { dtype, worst } = await check(c);
      console.log(`  ${c.name.padEnd(40)} ${dtype}  max rel. error ${worst.toExponential(2)}`);
    });
  }

  it('has a finite-difference case for every rule in the table', () => {
    const covered = new Set(CASES.map((c) => c.op));
    const rules = Object.entries(OPS).filter(([, spec]) => typeof spec.vjp === 'function').map(([op]) => op);
    const untested = rules.filter((op) => !covered.has(op as OpName) && op !== 'Cast');
    expect(untested).toEqual([]);
  });

  it("passes no gradient through a 'zero' op and refuses an 'inference-only' one, naming op and node", () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2]);
    g.output('loss', g.op('ReduceSum', [g.op('Sign', [a])], { keepdims: 0 }));
    expect(gradients(g, 'loss', [a]).get('a')).toBeUndefined();

    const h = new Graph();
    const q = h.input('q', 'float32', [1, 4, 8]);
    const attended = h.op('MultiHeadAttention', [q, q, q], { num_heads: 2, scale: 0.5 }, 'attended');
    h.output('loss', h.op('ReduceSum', [attended], { keepdims: 0 }));
    expect(() => gradients(h, 'loss', [q])).toThrow(/MultiHeadAttention is inference-only.*MultiHeadAttention\(q, q, q\) → attended/);
  });

  it('interpolation matrices reproduce PyTorch bilinear weights', () => {
    // align_corners=False, 2 → 4: sources -0.25→0 (clamped), 0.25, 0.75, 1.25→ (1,1)
    expect(Array.from(linearInterpolationMatrix(2, 4, 'half_pixel'))).toEqual([1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1]);
    expect(Array.from(linearInterpolationMatrix(2, 3, 'align_corners'))).toEqual([1, 0, 0.5, 0.5, 0, 1]);
  });

  it('returns no gradient for parameters the loss does not use', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2]);
    const unused = g.input('u', 'float32', [2]);
    g.output('loss', g.op('ReduceSum', [g.mul(a, a)], { keepdims: 0 }));
    const grads = gradients(g, 'loss', [a, unused]);
    expect(grads.get('a')).toBeDefined();
    expect(grads.get('u')).toBeUndefined();
  });
});
