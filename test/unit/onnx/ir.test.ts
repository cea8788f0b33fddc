import { describe, expect, it } from 'vitest';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { divDims, mulDims } from '../../../main/core/onnx/shape.ts';
import { graphFlops, OPS } from '../../../main/core/onnx/ops.ts';

describe('symbolic dims', () => {
  it('multiplies and divides batch multiples exactly', () => {
    expect(mulDims('batch', 121)).toBe('121*batch');
    expect(mulDims(2, '3*batch')).toBe('6*batch');
    expect(divDims('121*batch', 11)).toBe('11*batch');
    expect(divDims('121*batch', '121*batch')).toBe(1);
    expect(divDims('batch', 2)).toBeUndefined();
    expect(() => mulDims('batch', 'batch')).toThrow(/two symbolic/);
  });
});

describe('shape inference', () => {
  it('folds windows into the batch and back with -1 reshapes', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 88, 88, 8]);
    const win = g.reshape(g.transpose(g.reshape(x, [-1, 11, 8, 11, 8, 8]), [0, 1, 3, 2, 4, 5]), [-1, 64, 8]);
    expect(g.shape(win)).toEqual(['121*batch', 64, 8]);
    const back = g.reshape(win, [-1, 11, 11, 8, 8, 8]);
    expect(g.shape(back)).toEqual(['batch', 11, 11, 8, 8, 8]);
    expect(() => g.reshape(x, [-1, 7, 8])).toThrow(/cannot reshape/);
  });

  it('infers MatMul with broadcasting, Conv, pooling-by-reduction, Slice, Pad, Split, Concat and Resize', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 3, 32, 48]);
    const w = g.constant(new Float32Array(8 * 3 * 7 * 7), [8, 3, 7, 7]);
    const c = g.op('Conv', [x, w], { kernel_shape: [7, 7], strides: [4, 4], pads: [3, 3, 3, 3] });
    expect(g.shape(c)).toEqual(['batch', 8, 8, 12]);
    const d = g.op('Conv', [c, g.constant(new Float32Array(4 * 8 * 9), [4, 8, 3, 3])], { kernel_shape: [3, 3], pads: [3, 3, 3, 3], dilations: [3, 3] });
    expect(g.shape(d)).toEqual(['batch', 4, 8, 12]);
    const t = g.transpose(c, [0, 2, 3, 1]);
    const m = g.matmul(t, g.constant(new Float32Array(8 * 5), [8, 5]));
    expect(g.shape(m)).toEqual(['batch', 8, 12, 5]);
    expect(g.shape(g.reduceMax(g.reshape(m, [-1, 4, 2, 6, 2, 5]), [2, 4]))).toEqual(['batch', 4, 6, 5]);
    expect(g.shape(g.slice(m, [0, 0], [5, 7], [1, 2]))).toEqual(['batch', 5, 7, 5]);
    expect(g.shape(g.pad(m, [0, 0, 0, 0, 0, 8, 4, 0]))).toEqual(['batch', 16, 16, 5]);
    const [a, b] = g.split(m, [2, 3], 3) as [string, string];
    expect(g.shape(b)).toEqual(['batch', 8, 12, 3]);
    expect(g.shape(g.concat([a, b, a], 3))).toEqual(['batch', 8, 12, 7]);
    const scales = g.constant(Float32Array.of(1, 1, 2, 2), [4]);
    expect(g.shape(g.op('Resize', [c, '', scales], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }))).toEqual(['batch', 8, 16, 24]);
  });

  it('refuses mismatched shapes and unknown attributes with the op named', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 4]);
    expect(() => g.matmul(x, g.constant(new Float32Array(15), [5, 3]))).toThrow(/MatMul: inner dims differ/);
    expect(() => g.add(x, g.constant(new Float32Array(3), [3]))).toThrow(/Add: shapes do not broadcast/);
    expect(() => g.op('Softmax', [x], { axes: 1 })).toThrow(/unknown attribute "axes"/);
  });

  it('names graph outputs by renaming the producer, or with an Identity when the value is reused', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = g.relu(x);
    const z = g.relu(y);
    g.output('y', y);
    g.output('z', z);
    expect(g.outputs).toEqual(['y', 'z']);
    expect(g.nodes.map((n) => n.op)).toEqual(['Relu', 'Relu', 'Identity']);
    expect(g.nodes[1]!.outputs).toEqual(['z']);
  });

  it('counts FLOPs from shapes (2·M·N·K for MatMul, 2·out·Cin·k² for Conv)', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 10, 20]);
    g.matmul(x, g.constant(new Float32Array(20 * 30), [20, 30]));
    expect(graphFlops(g, { batch: 3 })).toBe(2 * 3 * 10 * 30 * 20);
    const h = new Graph();
    const y = h.input('y', 'float32', ['batch', 4, 6, 6]);
    h.op('Conv', [y, h.constant(new Float32Array(5 * 4 * 9), [5, 4, 3, 3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    expect(graphFlops(h, { batch: 1 })).toBe(2 * 5 * 36 * 4 * 9);
  });

  it('keeps every op’s attribute schema and shape rule in one table', () => {
    for (const [name, spec] of Object.entries(OPS)) {
      expect(typeof spec.infer, name).toBe('function');
      expect(typeof spec.attrs, name).toBe('object');
    }
  });

  it('says in every row how the op differentiates (a rule, zero or inference-only)', () => {
    const kinds = Object.entries(OPS).map(([name, spec]) => [name, typeof spec.vjp === 'function' ? 'rule' : spec.vjp]);
    for (const [name, kind] of kinds) expect(['rule', 'zero', 'inference-only'], name).toContain(kind);
    expect(kinds.filter(([, k]) => k === 'inference-only').map(([n]) => n)).toContain('MultiHeadAttention');
  });
});
