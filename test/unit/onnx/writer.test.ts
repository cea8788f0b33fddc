import { describe, expect, it } from 'vitest';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { convBn, linear, upsampleBilinear, Weights } from '../../../main/core/onnx/layers.ts';
import { loadOrt } from '../../../main/core/onnx/session.ts';
import { joinChunks, OPSET, serializeModel } from '../../../main/core/onnx/writer.ts';

/** Just enough protobuf decoding to read back what the writer wrote. */
function fields(buf: Uint8Array): { field: number; wire: number; value: bigint | Uint8Array }[] {
  const out: { field: number; wire: number; value: bigint | Uint8Array }[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const wire = tag & 7;
    if (wire === 0) out.push({ field: tag >> 3, wire, value: varint() });
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ field: tag >> 3, wire, value: buf.subarray(pos, pos + n) });
      pos += n;
    } else if (wire === 5) {
      out.push({ field: tag >> 3, wire, value: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function tinyModel(): { g: Graph; weights: Map<string, { shape: number[]; data: Float32Array }> } {
  const weights = new Map([
    ['fc.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 10) }],
    ['fc.bias', { shape: [3], data: Float32Array.of(0.1, -0.2, 0.3) }],
  ]);
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 4]);
  g.output('y', linear(g, new Weights(weights), x, 'fc', 4, 3));
  return { g, weights };
}

describe('ONNX writer', () => {
  it('writes ModelProto with opset, IR version, dynamic batch and official initializer names', () => {
    const { g, weights } = tinyModel();
    const model = serializeModel(g);
    const bytes = joinChunks(model);
    expect(bytes.length).toBe(model.byteLength);
    const top = fields(bytes);
    expect(top.find((f) => f.field === 1)!.value).toBe(9n);
    const opset = fields(top.find((f) => f.field === 8)!.value as Uint8Array);
    expect(opset.find((f) => f.field === 2)!.value).toBe(BigInt(OPSET));
    const graph = fields(top.find((f) => f.field === 7)!.value as Uint8Array);
    const inits = graph.filter((f) => f.field === 5).map((f) => fields(f.value as Uint8Array));
    const byName = new Map(inits.map((t) => [text(t.find((f) => f.field === 8)!.value as Uint8Array), t]));
    expect([...byName.keys()]).toEqual(['fc.weight', 'fc.bias']);
    const w = byName.get('fc.weight')!;
    expect(w.filter((f) => f.field === 1).map((f) => f.value)).toEqual([3n, 4n]);
    const raw = w.find((f) => f.field === 9)!.value as Uint8Array;
    expect([...new Float32Array(raw.slice().buffer)]).toEqual([...weights.get('fc.weight')!.data]);
    // graph input x: dim_param 'batch', then dim_value 4
    const input = fields(graph.find((f) => f.field === 11)!.value as Uint8Array);
    const tensorType = fields(fields(input.find((f) => f.field === 2)!.value as Uint8Array)[0]!.value as Uint8Array);
    const dims = fields(tensorType.find((f) => f.field === 2)!.value as Uint8Array).map((d) => fields(d.value as Uint8Array)[0]!);
    expect(text(dims[0]!.value as Uint8Array)).toBe('batch');
    expect(dims[1]!.value).toBe(4n);
  });

  it('puts weight bytes in the chunk list as views, not copies', () => {
    const { g, weights } = tinyModel();
    const chunks = serializeModel(g).chunks;
    expect(chunks.some((c) => c.buffer === weights.get('fc.weight')!.data.buffer)).toBe(true);
  });

  it('runs in ONNX Runtime with a dynamic batch: Linear = x·Wᵀ + b', async () => {
    const { g, weights } = tinyModel();
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)));
    const x = Float32Array.of(1, 2, 3, 4, -1, 0, 0.5, 2, 0, 0, 0, 0);
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [3, 4]) });
    expect(y!.dims).toEqual([3, 3]);
    const W = weights.get('fc.weight')!.data;
    const b = weights.get('fc.bias')!.data;
    for (let r = 0; r < 3; r++) {
      for (let o = 0; o < 3; o++) {
        let acc = b[o]!;
        for (let i = 0; i < 4; i++) acc += x[r * 4 + i]! * W[o * 4 + i]!;
        expect((y!.data as Float32Array)[r * 3 + o]).toBeCloseTo(acc, 5);
      }
    }
    await session.release();
  });

  it('folded and explicit BatchNorm agree; bilinear ×2 align_corners matches the formula', async () => {
    const weights = new Map([
      ['c.weight', { shape: [2, 1, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => Math.sin(i)) }],
      ['bn.weight', { shape: [2], data: Float32Array.of(1.5, 0.5) }],
      ['bn.bias', { shape: [2], data: Float32Array.of(0.2, -0.1) }],
      ['bn.running_mean', { shape: [2], data: Float32Array.of(0.3, -0.4) }],
      ['bn.running_var', { shape: [2], data: Float32Array.of(2, 0.25) }],
    ]);
    const ort = await loadOrt();
    const x = Float32Array.from({ length: 16 }, (_, i) => Math.cos(i));
    const outputs: Float32Array[] = [];
    for (const fold of [true, false]) {
      const g = new Graph();
      const input = g.input('x', 'float32', [1, 1, 4, 4]);
      const y = convBn(g, new Weights(weights), input, 'c', 'bn', [2, 1, 3, 3], { pad: [1, 1], fold });
      g.output('y', y);
      g.output('up', upsampleBilinear(g, input, 2, true));
      const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)));
      const r = await session.run({ x: new ort.Tensor('float32', x, [1, 1, 4, 4]) });
      outputs.push(r.y!.data as Float32Array);
      // align_corners: output 0..7 maps to input 0..3 with step 3/7
      const up = r.up!.data as Float32Array;
      const at = (yy: number, xx: number): number => x[yy * 4 + xx]!;
      const sy = (5 * 3) / 7;
      const sx = (2 * 3) / 7;
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      const fy = sy - y0;
      const fx = sx - x0;
      const expected = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      expect(up[5 * 8 + 2]).toBeCloseTo(expected, 5);
      await session.release();
    }
    for (let i = 0; i < outputs[0]!.length; i++) expect(outputs[0]![i]).toBeCloseTo(outputs[1]![i]!, 5);
  });

  it('stores large initializers as 4096-aligned external data, small ones inline', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 300]);
    const big = g.param('big.weight', { shape: [300, 300], data: new Float32Array(90_000).fill(1) });
    g.output('y', g.add(g.matmul(x, big), g.scalar(1)));
    const model = serializeModel(g, { externalData: { location: 'm.onnx.data' } });
    expect(model.dataByteLength).toBe(360_000);
    const graph = fields(fields(joinChunks(model)).find((f) => f.field === 7)!.value as Uint8Array);
    const inits = graph.filter((f) => f.field === 5).map((f) => fields(f.value as Uint8Array));
    const big0 = inits.find((t) => text(t.find((f) => f.field === 8)!.value as Uint8Array) === 'big.weight')!;
    expect(big0.find((f) => f.field === 14)!.value).toBe(1n); // data_location EXTERNAL
    expect(big0.some((f) => f.field === 9)).toBe(false);
    const entries = big0.filter((f) => f.field === 13).map((f) => fields(f.value as Uint8Array).map((e) => text(e.value as Uint8Array)));
    expect(entries).toEqual([['location', 'm.onnx.data'], ['offset', '0'], ['length', '360000']]);
    const scalar = inits.find((t) => text(t.find((f) => f.field === 8)!.value as Uint8Array) === 'f32(1)')!;
    expect(scalar.some((f) => f.field === 9)).toBe(true);
  });

  it('fused inference ops (Gemm, com.microsoft MultiHeadAttention) equal their primitive compositions', async () => {
    const n = 3;
    const L = 8;
    const heads = 2;
    const d = 8;
    const rnd = (len: number, seed: number): Float32Array => Float32Array.from({ length: len }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));
    const weights = new Map([
      ['fc.weight', { shape: [3 * d, d], data: rnd(3 * d * d, 1) }],
      ['fc.bias', { shape: [3 * d], data: rnd(3 * d, 2) }],
    ]);
    const results: Float32Array[] = [];
    for (const fused of [true, false]) {
      const g = new Graph();
      g.inferenceOnly = fused;
      const x = g.input('x', 'float32', [n, L, d]);
      const [q, k, v] = g.split(linear(g, new Weights(weights), x, 'fc', d, 3 * d), [d, d, d], 2) as [string, string, string];
      const hd = d / heads;
      let o: string;
      if (fused) o = g.op('MultiHeadAttention', [q, k, v], { num_heads: heads, scale: 1 / Math.sqrt(hd) });
      else {
        const split = (t: string, perm: number[]): string => g.transpose(g.reshape(t, [n, L, heads, hd]), perm);
        const s = g.softmax(g.matmul(g.mul(split(q, [0, 2, 1, 3]), g.scalar(1 / Math.sqrt(hd))), split(k, [0, 2, 3, 1])), -1);
        o = g.reshape(g.transpose(g.matmul(s, split(v, [0, 2, 1, 3])), [0, 2, 1, 3]), [n, L, d]);
      }
      g.output('o', o);
      const ort = await loadOrt();
      const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)));
      const r = await session.run({ x: new ort.Tensor('float32', rnd(n * L * d, 3), [n, L, d]) });
      results.push(r.o!.data as Float32Array);
      await session.release();
    }
    for (let i = 0; i < results[0]!.length; i++) expect(results[0]![i]).toBeCloseTo(results[1]![i]!, 5);
  });
});
