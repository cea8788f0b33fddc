/**
 * int8 and float16 inference graphs (onnx/quantize.ts), issue 19's agreement acceptance:
 * - with the bundled model on the four shared phantoms, int8 label maps agree with float32 ones at
 *   Dice ≥ 0.99 (WT) and ≥ 0.98 (TC, ET), and the Dice against ground truth drops by at most 0.005;
 * - with random-weight hiera_l on a phantom slice, int8 logits correlate with float32 at ≥ 0.999
 *   with 8-bit weights. On x86 CPUs without VNNI the engine stores weights in 7 bits instead
 *   (defaultWeightEncoding `s7`: their u8×s8 instruction saturates with full-range int8 weights,
 *   and the saturation-free u8×u8 kernels cost the whole int8 gain); a step twice as large has four
 *   times the error variance, so the bound there is 1 − 4 × 0.001 = 0.996. Every encoding is run
 *   and printed: 8-bit ones that cannot saturate (u8 everywhere, s8 where the engine picks it) must
 *   reach 0.999, and where the engine picks s7, s8 must do worse (the saturation it avoids).
 *   At 128×128, not 352: the same 48 blocks, weights and quantized layers (every layer sees a
 *   smaller token grid only), at a ninth of the FLOPs, so the test stays within seconds; the random
 *   weights are 'signal' weights (RandomWeights), whose logits vary across the image as a trained
 *   model's do (the default small weights give near-constant logits, which correlate trivially).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { openPath } from '../../../main/core/io/open.ts';
import { DEFAULT_MODEL_DIR } from '../../../main/core/jobs/bundled.ts';
import { sliceModelFromCheckpoint } from '../../../main/core/jobs/model.ts';
import { segmentStudy } from '../../../main/core/jobs/segment.ts';
import { regionDice, regionsFor } from '../../../main/core/metrics/regions.ts';
import { parseHieraConfig } from '../../../main/core/model/config.ts';
import { buildGraph, buildModel, buildSam2UNetGraph, cacheKey, int8Calibration, keepFloatInInt8 } from '../../../main/core/model/engine.ts';
import { calibrateStaticRanges, calibrationInput } from '../../../main/core/model/calibrate.ts';
import { inputChannels, prepareSlices } from '../../../main/core/model/preprocess.ts';
import { RandomWeights } from '../../../main/core/onnx/layers.ts';
import { calibrationTargets, convertToFloat16, defaultWeightEncoding, fixedScale, parsePrecision, quantizePerChannel, splitProjections, staticConvTargets, toHalfBits, WEIGHT_ENCODINGS, type WeightEncoding } from '../../../main/core/onnx/quantize.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';
import { SessionClient } from '../../../main/core/onnx/session.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const bundledCheckpoint = join(DEFAULT_MODEL_DIR, 'model.safetensors');
const cache = mkdtempSync(join(tmpdir(), 'sam2unet-quantize-'));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

const AGREEMENT = { WT: 0.99, TC: 0.98, ET: 0.98 } as const;
const MAX_GT_DICE_DROP = 0.005;
const WEIGHT_ENCODING = defaultWeightEncoding();
const MIN_CORRELATION_8_BIT = 0.999;
const MIN_CORRELATION = WEIGHT_ENCODING === 's7' ? 0.996 : MIN_CORRELATION_8_BIT;

describe('quantizePerChannel', () => {
  it('scales each output channel by its own largest weight, symmetric, rounding to the nearest step', () => {
    const w = Float32Array.from([0.5, -1, 0.25, 0, 0, 0, 2, 1, -0.01]);
    const q = quantizePerChannel(w, 3);
    expect(Array.from(q.scales)).toEqual([1 / 127, 1, 2 / 127].map(Math.fround));
    expect(Array.from(q.data)).toEqual([64, -127, 32, 0, 0, 0, 127, 64, -1]);
    for (let i = 0; i < w.length; i++) expect(Math.abs(q.data[i]! * q.scales[Math.floor(i / 3)]! - w[i]!)).toBeLessThanOrEqual(q.scales[Math.floor(i / 3)]! / 2 + 1e-7);
    // laid out (K, N) for a MatMul's B
    const t = quantizePerChannel(w, 3, { transpose: true });
    expect(Array.from(t.data)).toEqual([64, 0, 127, -127, 0, 64, 32, 0, -1]);
    // 7-bit weights (the s7 encoding)
    expect(Math.max(...quantizePerChannel(w, 3, { bits: 7 }).data.map(Math.abs))).toBe(63);
  });
});

describe('float16', () => {
  it('rounds float32 to the nearest half (ties to even), with overflow, subnormals and NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff], [65520, 0x7c00], [-1e6, 0xfc00],
      [6e-8, 0x0001], [1e-8, 0x0000], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00],
    ];
    for (const [value, bits] of cases) expect(toHalfBits(value), String(value)).toBe(bits);
    expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalfBits(NaN) & 0x3ff).not.toBe(0);
  });
});

describe('int8 and float16 graphs of SAM2-UNet', () => {
  const config = parseHieraConfig('hiera_t', 'test');
  const build = (precision: 'float32' | 'int8' | 'float16') => buildGraph('sam2unet', config, new RandomWeights(3), { height: 64, width: 64, outChannels: 3, precision });

  it('int8: every Linear and Conv reads int8 weights but the patch embedding and the heads', () => {
    const float = build('float32');
    const int8 = build('int8');
    const count = (g: typeof float, op: string) => g.nodes.filter((n) => n.op === op).length;
    const linears = count(float, 'Gemm');
    const convs = count(float, 'Conv');
    // the patch embedding and the three heads stay float32
    expect(count(int8, 'Conv')).toBe(4);
    expect(count(int8, 'Gemm')).toBe(0);
    // a conv over a channel concatenation runs one integer product per part (each at its own scale)
    const producer = new Map(float.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const extraParts = float.nodes
      .filter((n) => n.op === 'Conv' && !keepFloatInInt8(n.inputs[1]!))
      .reduce((sum, n) => sum + (producer.get(n.inputs[0]!)?.op === 'Concat' ? producer.get(n.inputs[0]!)!.inputs.length - 1 : 0), 0);
    expect(extraParts).toBeGreaterThan(0);
    expect(count(int8, 'MatMulInteger')).toBe(linears + convs - 4 + extraParts);
    // every Linear's output is still produced under its name, or the N-D value it was reshaped to
    // (a conv's NCHW output may be gone when only convs read it: they read its NHWC form), and every
    // node reads values made before it
    const available = new Set([...int8.inputs, ...int8.initializers.keys()]);
    for (const n of int8.nodes) {
      for (const i of n.inputs) if (i) expect(available.has(i), `${n.op} reads ${i} before it is made`).toBe(true);
      for (const o of n.outputs) available.add(o);
    }
    const readers = (v: string) => float.nodes.filter((n) => n.inputs.includes(v));
    let unflattened = 0;
    for (const n of float.nodes.filter((n) => n.op === 'Gemm')) {
      const out = n.outputs[0]!;
      if (available.has(out)) continue;
      const [reshape, ...others] = readers(out);
      expect(others, `${out} has one reader`).toEqual([]);
      expect(reshape?.op).toBe('Reshape');
      expect(available.has(reshape!.outputs[0]!), `${out} or its reshape is produced`).toBe(true);
      unflattened++;
    }
    // the trunk's Linears read and write their N-D tensors: no reshapes around them
    expect(unflattened).toBeGreaterThan(linears / 2);
    for (const o of int8.outputs) expect(available.has(o)).toBe(true);
    const kept = int8.nodes.filter((n) => n.op === 'Conv').map((n) => n.inputs[1]!);
    expect(kept.every(keepFloatInInt8)).toBe(true);
    for (const n of int8.nodes.filter((n) => n.op === 'MatMulInteger')) expect(int8.info(n.inputs[1]!).dtype).toBe('int8');
    // the float weights they replace are gone from the graph
    const floatWeights = [...int8.initializers.values()].filter((i) => i.dtype === 'float32' && i.data.length > 4096 && !keepFloatInInt8(i.name) && !i.name.includes('pos_embed'));
    expect(floatWeights.map((i) => i.name)).toEqual([]);
    expect(int8.outputs.map((o) => int8.info(o))).toEqual(float.outputs.map((o) => float.info(o)));
  });

  it('q, k and v are three Linears (no Split of a packed product), computing the same numbers', async () => {
    const packed = buildSam2UNetGraph(config, new RandomWeights(3, 'signal'), { height: 64, width: 64, outChannels: 3 });
    const splits = packed.nodes.filter((n) => n.op === 'Split').length;
    const gemms = packed.nodes.filter((n) => n.op === 'Gemm').length;
    expect(splits).toBe(12);
    const parts = buildSam2UNetGraph(config, new RandomWeights(3, 'signal'), { height: 64, width: 64, outChannels: 3 });
    expect(splitProjections(parts)).toBe(12);
    expect(parts.nodes.filter((n) => n.op === 'Split').length).toBe(0);
    expect(parts.nodes.filter((n) => n.op === 'Gemm').length).toBe(gemms + 2 * splits);
    expect(build('float32').nodes.filter((n) => n.op === 'Split').length).toBe(0);
    const input = new ort.Tensor('float32', Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 64, 64]);
    const run = async (g: typeof packed) => {
      const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
      try {
        return ((await session.run({ input })).out!.data as Float32Array);
      } finally {
        await session.release();
      }
    };
    const [a, b] = [await run(packed), await run(parts)];
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) [worst, scale] = [Math.max(worst, Math.abs(a[i]! - b[i]!)), Math.max(scale, Math.abs(a[i]!))];
    // the same products in another grouping: float32 rounding only
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('int8 with calibrated ranges: the RFB branches and the decoder hold uint8 maps between convs (QLinearConv), and back to float once', () => {
    const float = build('float32');
    const held = staticConvTargets(float, keepFloatInInt8);
    const all = calibrationTargets(float, keepFloatInInt8);
    // per RFB: branch0.0 and branch1–3 .0–.3; per Up block: the ReLU after its first conv
    expect(held.length).toBe(4 * 13 + 3);
    // and the convs reading them: each RFB's conv_cat, each Up block's second conv (after its ReLU)
    expect(all.length - held.length).toBe(4 + 3);
    const ranges = new Map(all.map((v, i) => [v, [-0.5 - (i % 3), 1 + (i % 5)] as const]));
    const dynamic = buildGraph('sam2unet', config, new RandomWeights(3), { height: 64, width: 64, outChannels: 3, precision: 'int8' });
    const fixed = buildGraph('sam2unet', config, new RandomWeights(3), { height: 64, width: 64, outChannels: 3, precision: 'int8', int8Ranges: ranges });
    const count = (g: typeof float, op: string) => g.nodes.filter((n) => n.op === op).length;
    // branch1–3 .1–.3 read a held map and make one; each conv_cat reads its four branches as one
    // map (one scale) and each second Up conv its held ReLU: QLinearConv, dequantized after
    expect(count(fixed, 'QLinearConv')).toBe(4 * 9 + 4 + 3);
    expect(count(fixed, 'DequantizeLinear')).toBe(4 + 3);
    // held maps are made by QLinearConv or quantized once at their calibrated scale: fewer range passes
    expect(count(fixed, 'QuantizeLinear')).toBe(held.length - 4 * 9);
    expect(count(fixed, 'DynamicQuantizeLinear')).toBeLessThan(count(dynamic, 'DynamicQuantizeLinear') - 20);
    expect(count(dynamic, 'QLinearConv')).toBe(0);
    // the branch maps a conv_cat reads share one scale: their bytes are concatenated
    const concats = fixed.nodes.filter((n) => n.op === 'Concat' && fixed.info(n.outputs[0]!).dtype === 'uint8');
    expect(concats.length).toBe(4);
    for (const c of concats) expect(new Set(c.inputs.map((i) => fixed.nodes.find((n) => n.outputs.includes(i))!.op))).toEqual(new Set(['QLinearConv', 'QuantizeLinear']));
    // every node reads values made before it, and the outputs are unchanged
    const available = new Set([...fixed.inputs, ...fixed.initializers.keys()]);
    for (const n of fixed.nodes) {
      for (const i of n.inputs) if (i) expect(available.has(i), `${n.op} reads ${i} before it is made`).toBe(true);
      for (const o of n.outputs) available.add(o);
    }
    expect(fixed.outputs.map((o) => fixed.info(o))).toEqual(float.outputs.map((o) => float.info(o)));
    // a calibrated range is a uint8 scale as DynamicQuantizeLinear would pick it, holding 0
    const [scale, zeroPoint] = fixedScale([-1, 1.55]);
    expect([scale / (2.55 / 255), zeroPoint]).toEqual([1, 100]);
    const [positive, zero] = fixedScale([0.5, 2.55]);
    expect(positive).toBeCloseTo(0.01, 12);
    expect(zero).toBe(0);
    expect(fixedScale([0, 0])).toEqual([1, 0]);
  });

  it('calibration: every target gets the finite range it takes on slices of a generated phantom', async () => {
    const float = buildSam2UNetGraph(config, new RandomWeights(3, 'signal'), { height: 64, width: 64, outChannels: 3 });
    splitProjections(float);
    const nodes = float.nodes.length;
    const ranges = await calibrateStaticRanges(float, 'input', keepFloatInInt8, 64, 64);
    expect([...ranges.keys()].sort()).toEqual(calibrationTargets(float, keepFloatInInt8).sort());
    for (const [name, [lo, hi]] of ranges) {
      expect(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi, `${name}: [${lo}, ${hi}]`).toBe(true);
      // a ReLU's map is never negative; a BasicConv's (no activation) has both signs
      if (name.includes('Relu')) expect(lo).toBeGreaterThanOrEqual(0);
    }
    expect([...ranges.values()].some(([lo]) => lo < 0)).toBe(true);
    // the graph is left as it was
    expect(float.nodes.length).toBe(nodes);
    expect(float.outputs).toEqual(['out', 'out1', 'out2']);
    // the same slices every time: the int8 model is a function of the weights alone
    expect(calibrationInput(64, 64).data).toEqual(calibrationInput(64, 64).data);
  });

  it('the int8 cache key names the calibration: ranges given by the caller make another model', () => {
    const key = (int8Ranges?: Map<string, readonly [number, number]>) => cacheKey('sam2unet', config, { height: 64, width: 64, precision: 'int8', ...(int8Ranges ? { int8Ranges } : {}) }, 'w');
    expect(new Set([key(), key(new Map()), key(new Map([['a', [0, 1] as const]]))]).size).toBe(3);
  });

  it('float16: half weights and activations, LayerNorm in float32, float32 in and out', () => {
    const g = build('float16');
    expect(g.info('input').dtype).toBe('float32');
    for (const o of g.outputs) expect(g.info(o).dtype).toBe('float32');
    for (const n of g.nodes.filter((n) => n.op === 'LayerNormalization')) for (const v of [...n.inputs, ...n.outputs]) expect(g.info(v).dtype).toBe('float32');
    for (const n of g.nodes.filter((n) => n.op === 'Gemm' || n.op === 'Conv' || n.op === 'MultiHeadAttention')) for (const v of [...n.inputs, ...n.outputs].filter(Boolean)) expect(g.info(v).dtype).toBe('float16');
    expect(() => convertToFloat16(build('float32'))).not.toThrow();
  });

  it('the precision is part of the cache key; an unknown one is refused', () => {
    const key = (precision?: 'float32' | 'int8' | 'float16') => cacheKey('sam2unet', config, { height: 64, width: 64, ...(precision ? { precision } : {}) }, 'w');
    expect(new Set([key(), key('int8'), key('float16')]).size).toBe(3);
    expect(key()).toBe(key('float32'));
    expect(() => parsePrecision('int4')).toThrow(/unknown precision "int4"; choose one of float32, int8, float16/);
    expect(parsePrecision(undefined)).toBe('float32');
  });

  it('float16 logits match float32 closely (run on the CPU, which casts where it has no half kernels)', async () => {
    const outs = await Promise.all((['float32', 'float16'] as const).map((precision) => forward('hiera_t', precision, 64)));
    expect(pearson(outs[0]!, outs[1]!)).toBeGreaterThan(0.9999);
  });
});

// the study is read once, though forward runs several times per test; the slice is prepared per
// run because the session transfers (detaches) its input buffer
let phantom001: ReturnType<typeof openPath> | undefined;
async function phantomStudy() {
  phantom001 ??= openPath(join(phantoms, 'BraTS20_Training_001'));
  return (await phantom001).studies[0]!;
}

/** The `out` logits of random-weight ('signal') SAM2-UNet on slice 80 of phantom 001. */
async function forward(preset: string, precision: 'float32' | 'int8' | 'float16', size: number, weights = new RandomWeights(5, 'signal'), weightEncoding?: WeightEncoding, int8Ranges?: ReadonlyMap<string, readonly [number, number]>): Promise<Float32Array> {
  const input = prepareSlices(inputChannels(await phantomStudy()), [79], { size: [size, size] });
  const built = await buildModel('sam2unet', parseHieraConfig(preset, 'test'), weights, { height: size, width: size, outChannels: 3, cache, precision, ...(weightEncoding ? { weightEncoding } : {}), ...(int8Ranges ? { int8Ranges } : {}) });
  const session = await SessionClient.create(built.source, { device: 'cpu' });
  try {
    return (await session.run({ input: { dims: [1, 3, size, size], data: input } })).out!.data;
  } finally {
    await session.dispose();
  }
}

function pearson(a: Float32Array, b: Float32Array): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) [ma, mb] = [ma + a[i]!, mb + b[i]!];
  [ma, mb] = [ma / a.length, mb / b.length];
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i]! - ma, b[i]! - mb];
    [ab, aa, bb] = [ab + x * y, aa + x * x, bb + y * y];
  }
  return ab / Math.sqrt(aa * bb);
}

describe('int8 against float32', () => {
  it(`random-weight hiera_l on a phantom slice: logits correlate at ≥ ${MIN_CORRELATION} (${WEIGHT_ENCODING} weights on this CPU)`, async () => {
    // one set of weights for every graph (each is built, run and released in turn)
    const weights = new RandomWeights(5, 'signal');
    const float = await forward('hiera_l', 'float32', 128, weights);
    // calibrated once, as buildModel would for each int8 graph: the encodings differ in weights only
    const ranges = await int8Calibration(parseHieraConfig('hiera_l', 'test'), weights, { height: 128, width: 128, outChannels: 3 });
    const int8 = await forward('hiera_l', 'int8', 128, weights, WEIGHT_ENCODING, ranges);
    const plane = 128 * 128;
    const overall = pearson(float, int8);
    // per channel: a channel's offset cannot carry the correlation
    const channels = [0, 1, 2].map((c) => pearson(float.subarray(c * plane, (c + 1) * plane), int8.subarray(c * plane, (c + 1) * plane)));
    console.log(`hiera_l (random 'signal' weights, 128²) int8 (${WEIGHT_ENCODING} weights) vs float32 logits: correlation ${overall.toFixed(6)}; per channel ${channels.map((c) => c.toFixed(6)).join(', ')}`);
    expect(overall).toBeGreaterThanOrEqual(MIN_CORRELATION);
    for (const c of channels) expect(c).toBeGreaterThanOrEqual(MIN_CORRELATION);
    // where the engine picks s7, full-range int8 saturates (0.928 on an AVX2 EPYC); u8 never does
    const others = new Map<WeightEncoding, number>();
    for (const encoding of WEIGHT_ENCODINGS.filter((e) => e !== WEIGHT_ENCODING)) {
      others.set(encoding, pearson(float, await forward('hiera_l', 'int8', 128, weights, encoding, ranges)));
      console.log(`the same with ${encoding} weights: correlation ${others.get(encoding)!.toFixed(6)}`);
    }
    if (WEIGHT_ENCODING === 's7') expect(others.get('s8')!).toBeLessThan(overall);
    expect(others.get('u8') ?? overall).toBeGreaterThanOrEqual(MIN_CORRELATION_8_BIT);
  });

  // 2 × 4 × 155 slices of the bundled model: about half a minute on an idle 2-core machine
  it('the bundled model on the four shared phantoms: the label maps agree and the Dice against ground truth holds', { timeout: 600_000 }, async () => {
    const [float, int8] = await Promise.all((['float32', 'int8'] as const).map((precision) => sliceModelFromCheckpoint(bundledCheckpoint, { device: 'cpu', precision, cache })));
    try {
      expect(int8.precision).toBe('int8');
      const regions = regionsFor('brats');
      const lines: string[] = [];
      for (const i of [1, 2, 3, 4]) {
        const study = (await openPath(join(phantoms, `BraTS20_Training_00${i}`))).studies[0]!;
        const truth = study.seg!.data as Uint8Array;
        const [f, q] = await Promise.all([float, int8].map((model) => segmentStudy(study, model, { batchSize: 16, volumeMetrics: false }).then((o) => o.labels.data as Uint8Array)));
        const cells: string[] = [];
        for (const region of regions) {
          const name = region.name as keyof typeof AGREEMENT;
          const agreement = regionDice(f!, q!, region);
          const gtFloat = regionDice(f!, truth, region);
          const gtInt8 = regionDice(q!, truth, region);
          cells.push(`${name} agreement ${agreement?.toFixed(4) ?? 'both empty'}, vs GT ${gtFloat?.toFixed(4) ?? '—'} → ${gtInt8?.toFixed(4) ?? '—'}`);
          if (agreement !== null) expect(agreement, `${study.name} ${name}: int8 vs float32`).toBeGreaterThanOrEqual(AGREEMENT[name]);
          if (gtFloat !== null) expect(gtInt8!, `${study.name} ${name}: Dice against ground truth`).toBeGreaterThanOrEqual(gtFloat - MAX_GT_DICE_DROP);
        }
        lines.push(`${study.name}: ${cells.join('; ')}`);
      }
      console.log(`bundled model, int8 against float32:\n${lines.join('\n')}`);
    } finally {
      await Promise.all([float.dispose(), int8.dispose()]);
    }
  });
});
