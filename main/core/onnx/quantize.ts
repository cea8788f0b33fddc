/**
 * int8 inference graphs: a rewrite of a built float32 inference graph (never a training graph)
 * in which every Linear (Gemm, or MatMul with a constant matrix) and every Conv reads int8
 * weights quantized per output channel (symmetric, scale = max|w| / 127; stored as WeightEncoding says) and
 * int8 activations quantized per tensor, at run time from the tensor's own range
 * (DynamicQuantizeLinear, uint8 with a zero point), or at a calibrated scale for the maps only
 * convolutions read (`ranges`, model/calibrate.ts). Everything else — LayerNorm, softmax inside
 * attention, GELU, the residual adds, the layers the caller keeps — stays float32.
 *
 * The dynamic parts are standard ONNX ops in the shapes ONNX Runtime's CPU provider fuses:
 * DynamicQuantizeLinear → MatMulInteger → Cast → Mul(Mul(a_scale, b_scale)) → Add(bias) becomes
 * one DynamicQuantizeMatMul kernel (MLAS u8s8, VNNI where the CPU has it; u8u8 for `u8` weights), or MatMulIntegerToFloat
 * where several layers share the quantized input; a Conv becomes an im2col Gather on the
 * quantized NHWC bytes and the same integer product. The calibrated parts use ONNX Runtime's
 * contrib kernels directly (channels-last QLinearConv, MatMulIntegerToFloat), which have no
 * standard form.
 *
 * Also here, because it is a rewrite of built inference graphs of every precision: the split of a
 * Linear's output into parts (attention's q/k/v) becomes one Linear per part (splitProjections).
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';
import type { Graph } from './ir.ts';
import { ONNX_DTYPE, type Node } from './ops.ts';

export const PRECISIONS = ['float32', 'int8', 'float16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** A --precision flag or setting: float32 when absent. */
export function parsePrecision(value: string | undefined, what = '--precision'): Precision {
  const v = (value ?? 'float32').toLowerCase();
  if (!(PRECISIONS as readonly string[]).includes(v)) throw new UserError(`${what}: unknown precision "${value}"; choose one of ${PRECISIONS.join(', ')}`);
  return v as Precision;
}

export interface Int8Options {
  /** layers whose weight (initializer name) is kept float32 */
  keepFloat?: (weightName: string) => boolean;
  /** how the weights are stored (default s8; see WeightEncoding and defaultWeightEncoding) */
  weights?: WeightEncoding;
  /**
   * calibrated [min, max] of values calibrationTargets names: those maps stay uint8 at a fixed scale
   * from the conv that makes them to the convs that read them (QLinearConv where both ends are
   * fixed), with no float copy and no run-time range pass in between
   */
  ranges?: ReadonlyMap<string, readonly [number, number]>;
}

export interface QuantizeSummary {
  matmuls: number;
  convs: number;
  /** weights of layers left float32 */
  keptFloat: string[];
  /** convolutions whose output stays uint8 at a calibrated scale */
  staticConvs: number;
  /** bytes of weights before and after */
  weightBytes: { before: number; after: number };
}

export interface QuantizedWeight {
  /** int8 values, same layout as the input unless transposed */
  data: Int8Array;
  /** one scale per output channel */
  scales: Float32Array;
}

/**
 * Symmetric per-channel quantization of a weight whose channels are `channels` contiguous rows of
 * `row` values (PyTorch's Linear (out, in) and Conv (out, in, kh, kw) layouts). With `transpose`
 * the result is laid out (row, channels): the (K, N) B matrix a MatMul reads.
 */
export function quantizePerChannel(w: Float32Array, channels: number, opts: { transpose?: boolean; bits?: 7 | 8 } = {}): QuantizedWeight {
  const row = w.length / channels;
  if (!Number.isInteger(row)) throw new Error(`quantizePerChannel: ${w.length} values do not divide into ${channels} channels`);
  const qmax = opts.bits === 7 ? 63 : 127;
  const data = new Int8Array(w.length);
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let k = 0; k < row; k++) max = Math.max(max, Math.abs(w[c * row + k]!));
    // an all-zero channel still needs a finite, non-zero scale
    const scale = max > 0 ? max / qmax : 1;
    scales[c] = scale;
    const inv = 1 / scale;
    for (let k = 0; k < row; k++) {
      const q = Math.max(-qmax, Math.min(qmax, Math.round(w[c * row + k]! * inv)));
      data[opts.transpose ? k * channels + c : c * row + k] = q;
    }
  }
  return { data, scales };
}

const FLOAT_CODE = ONNX_DTYPE.float32;

/**
 * How int8 weights are stored, each per output channel at scale max|w| / range:
 * - `s8`: int8, ±127, zero point 0: MLAS's u8×s8 kernels (VNNI's VPDPBUSD on x86, any arm64);
 * - `s7`: int8 limited to ±63: the same kernels on x86 without VNNI, whose VPMADDUBSW adds two
 *   u8×s8 products into a saturating int16 (255 · 127 · 2 overflows it; 255 · 63 · 2 does not):
 *   ONNX Runtime's reduce_range;
 * - `u8`: uint8 with zero point 128, so ±127 as `s8`: MLAS widens u8×u8 operands to int16 and
 *   multiplies with VPMADDWD, which cannot saturate: `s8`'s precision on x86 without VNNI, at a
 *   cost in speed (`sam2unet bench --precision int8 --int8-weights u8,s7` times both).
 */
export const WEIGHT_ENCODINGS = ['s8', 's7', 'u8'] as const;
export type WeightEncoding = (typeof WEIGHT_ENCODINGS)[number];

/** whether this x86 CPU multiplies u8×s8 without saturating (VNNI, AMX) */
function hasInt8DotProduct(): boolean {
  try {
    return /\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // no /proc (Windows, macOS): assume the saturating instruction
    return false;
  }
}

/**
 * `s8` where the CPU multiplies u8×s8 without saturating (VNNI or AMX on x86, any arm64), `s7`
 * elsewhere on x86. Not `u8` there, although it is as precise as `s8`: MLAS's u8×u8 kernels took
 * the int8 gain away (AVX2 EPYC, 2 threads, 352²: hiera_l u8 1,956 ms against s7 1,407 ms and
 * float32 2,035 ms; hiera_t 308 / 245 / 370 ms), and where int8 is not faster float32 is the
 * precise choice.
 */
export function defaultWeightEncoding(): WeightEncoding {
  if (process.arch !== 'x64' && process.arch !== 'ia32') return 's8';
  return hasInt8DotProduct() ? 's8' : 's7';
}

/**
 * Rewrites `g` in place into its int8 form (see the module comment) and returns what changed.
 * The float weights the rewritten layers read are removed from the graph.
 */
export function quantizeInt8(g: Graph, opts: Int8Options = {}): QuantizeSummary {
  if (!g.inferenceOnly) throw new Error('int8 quantization applies to inference graphs only');
  const keep = opts.keepFloat ?? (() => false);
  const encoding = opts.weights ?? 's8';
  const bits = encoding === 's7' ? 7 : 8;
  /** a weight matrix as the encoding stores it, with its zero point ('' for int8: zero) */
  const weightConstant = (q: QuantizedWeight, shape: number[], name: string, perChannelZero = false): [string, string] => {
    if (encoding !== 'u8') return [g.constant(q.data, shape, 'int8', `${name}@int8`), ''];
    const u8 = new Uint8Array(q.data.length);
    for (let i = 0; i < u8.length; i++) u8[i] = q.data[i]! + 128;
    const zero = perChannelZero ? g.constant(new Uint8Array(q.scales.length).fill(128), [q.scales.length], 'uint8', `u8x${q.scales.length}(128)`, true) : g.constant(Uint8Array.of(128), [], 'uint8', 'u8(128)', true);
    return [g.constant(u8, shape, 'uint8', `${name}@uint8`), zero];
  };
  const summary: QuantizeSummary = { matmuls: 0, convs: 0, staticConvs: 0, keptFloat: [], weightBytes: { before: 0, after: 0 } };
  const ranges = opts.ranges ?? new Map<string, readonly [number, number]>();
  /** NHWC uint8 maps at a calibrated scale: bytes, scale and zero point (values), and the scale as a number */
  const fixedNhwc = new Map<string, { q: [string, string, string]; scale: number }>();
  const floatsOf = (name: string | undefined): Float32Array | undefined => (name ? g.constantFloats(name) : undefined);
  // layers reading the same activation share its quantization (q, k and v; the RFB branches): ONNX
  // Runtime then runs MatMulIntegerToFloat on the shared bytes instead of fusing one
  // DynamicQuantizeLinear into each DynamicQuantizeMatMul
  const quantizedInputs = new Map<string, [string, string, string]>();
  const quantizeInput = (x: string): [string, string, string] => {
    const hit = quantizedInputs.get(x);
    if (hit) return hit;
    const outs = g.node('DynamicQuantizeLinear', [x], {}, 3) as [string, string, string];
    quantizedInputs.set(x, outs);
    return outs;
  };
  const im2colIndices = (hp: number, wp: number, ho: number, wo: number, kh: number, kw: number, dh: number, dw: number): string => {
    const name = `im2col[${hp}x${wp}>${ho}x${wo},k${kh}x${kw},d${dh}x${dw}]`;
    if (g.initializers.has(name)) return name;
    return g.constant(im2colIndicesData(wp, ho, wo, kh, kw, dh, dw), [ho, wo, kh * kw], 'int64', name);
  };
  /**
   * A conv input (NCHW float) as quantized NHWC bytes with its scale and zero point. Where the
   * input is an NHWC map transposed to NCHW (the trunk's features, the convolutions rewritten here),
   * possibly through a ReLU, the NHWC map is quantized as it is: no transpose either way.
   */
  const nhwcInputs = new Map<string, [string, string, string]>();
  /** The NHWC float form of an NCHW value made from NHWC maps by a transpose, ReLU and additions; undefined otherwise. */
  const nhwcForms = new Map<string, string | undefined>();
  const nhwcFormOf = (v: string, depth = 0): string | undefined => {
    if (nhwcForms.has(v)) return nhwcForms.get(v);
    const p = producers.get(v);
    let form: string | undefined;
    if (p?.op === 'Transpose' && (p.attrs.perm as number[] | undefined)?.join() === '0,3,1,2') form = p.inputs[0];
    else if (depth < 4 && p?.op === 'Relu') {
      const inner = nhwcFormOf(p.inputs[0]!, depth + 1);
      if (inner) form = g.relu(inner);
    } else if (depth < 4 && p?.op === 'Add' && p.inputs.length === 2 && g.shape(p.inputs[0]!).join() === g.shape(p.inputs[1]!).join()) {
      const [a, b] = p.inputs.map((i) => nhwcFormOf(i, depth + 1));
      if (a && b) form = g.add(a, b);
    }
    nhwcForms.set(v, form);
    return form;
  };
  const quantizedNhwc = (x: string): [string, string, string] => {
    const fixed = fixedNhwc.get(x);
    if (fixed) return fixed.q;
    const hit = nhwcInputs.get(x);
    if (hit) return hit;
    const nhwcFloat = nhwcFormOf(x);
    let result: [string, string, string];
    if (nhwcFloat) result = g.node('DynamicQuantizeLinear', [nhwcFloat], {}, 3) as [string, string, string];
    else {
      const [xq, xs, xz] = quantizeInput(x);
      result = [g.transpose(xq, [0, 2, 3, 1]), xs, xz];
    }
    nhwcInputs.set(x, result);
    return result;
  };

  const staticTargets = new Set(opts.ranges ? staticConvTargets(g, keep) : []);
  const old = g.nodes.splice(0, g.nodes.length);
  const producers = new Map<string, Node>();
  for (const node of old) for (const o of node.outputs) producers.set(o, node);
  const readersByValue = readersOf(old);
  // maps one conv reads concatenated are held at the range of them all (one scale for the bytes)
  const commonRanges = new Map<string, readonly [number, number]>();
  for (const node of old) {
    if (node.op !== 'Concat' || !node.inputs.every((i) => staticTargets.has(i) && ranges.has(i))) continue;
    const all = node.inputs.map((i) => ranges.get(i)!);
    const union = [Math.min(...all.map((r) => r[0])), Math.max(...all.map((r) => r[1]))] as const;
    for (const i of node.inputs) commonRanges.set(i, union);
  }
  /** nodes a rewrite made redundant (the reshape back after a Linear) */
  const absorbed = new Set<Node>();
  for (const node of old) {
    if (absorbed.has(node)) continue;
    if (!rewrite(node)) g.nodes.push(node);
  }
  // a Concat whose parts the convolutions now read one by one is left without readers
  pruneDeadNodes(g);
  // the float maps held as uint8 instead (their shapes were read above) are made by no node now
  const made = new Set([...g.inputs, ...g.initializers.keys(), ...g.nodes.flatMap((n) => n.outputs)]);
  for (const name of [...g.values.keys()]) if (!made.has(name)) g.values.delete(name);
  pruneUnusedInitializers(g);
  return summary;

  function rewrite(node: Node): boolean {
    if (node.op === 'Gemm') return rewriteGemm(node);
    if (node.op === 'MatMul') return rewriteMatMul(node);
    if (node.op === 'Conv') return rewriteConv(node);
    return false;
  }

  /** y = x Wᵀ + b (transB = 1, the PyTorch weight) or x W + b (transB = 0), alpha = beta = 1, x not transposed. */
  function rewriteGemm(node: Node): boolean {
    const [x, wName, bias] = node.inputs as [string, string, string | undefined];
    const w = floatsOf(wName);
    if (!w || node.attrs.transA === 1 || (node.attrs.alpha ?? 1) !== 1 || (node.attrs.beta ?? 1) !== 1) return false;
    if (bias && g.shape(bias).length !== 1) return false;
    if (keep(wName)) {
      summary.keptFloat.push(wName);
      return false;
    }
    const [rows, cols] = g.shape(wName) as [number, number];
    const transB = node.attrs.transB === 1;
    const n = transB ? rows : cols;
    const k = transB ? cols : rows;
    // per output channel = per column of B; quantizePerChannel wants channels as rows
    const q = transB ? quantizePerChannel(w, n, { transpose: true, bits }) : transposedColumns(w, k, n, bits);
    emitMatMul(node, x, wName, q, k, n, bias);
    return true;
  }

  function rewriteMatMul(node: Node): boolean {
    const [x, wName] = node.inputs as [string, string];
    const w = floatsOf(wName);
    if (!w || g.shape(wName).length !== 2) return false;
    if (keep(wName)) {
      summary.keptFloat.push(wName);
      return false;
    }
    const [k, n] = g.shape(wName) as [number, number];
    emitMatMul(node, x, wName, transposedColumns(w, k, n, bits), k, n, undefined);
    return true;
  }

  function emitMatMul(node: Node, x: string, wName: string, q: QuantizedWeight, k: number, n: number, bias: string | undefined): void {
    let out = node.outputs[0]!;
    // MatMulInteger broadcasts over leading axes, unlike Gemm: read the N-D tensor the Gemm's 2-D
    // input was reshaped from and write the N-D value the Gemm's output is reshaped to, so both
    // reshapes go (a Linear in the trunk is otherwise three nodes)
    const flattened = producers.get(x);
    const source = flattened?.op === 'Reshape' ? flattened.inputs[0]! : undefined;
    const unflatten = readersByValue.get(out);
    if (source && unflatten?.length === 1 && unflatten[0]!.op === 'Reshape' && !g.outputs.includes(out)) {
      const from = g.shape(source);
      const to = g.shape(unflatten[0]!.outputs[0]!);
      if (from.length > 2 && from.length === to.length && from.at(-1) === k && to.at(-1) === n && from.slice(1, -1).every((d, i) => typeof d === 'number' && d === to[i + 1])) {
        absorbed.add(unflatten[0]!);
        g.values.delete(out);
        out = unflatten[0]!.outputs[0]!;
        x = source;
      }
    }
    g.values.delete(out);
    const [wq, wz] = weightConstant(q, [k, n], wName);
    const ws = g.constant(q.scales, [n], 'float32', `${wName}@int8scale`);
    const [xq, xs, xz] = quantizeInput(x);
    const acc = g.op('MatMulInteger', wz ? [xq, wq, xz, wz] : [xq, wq, xz]);
    const scale = g.mul(xs, ws);
    const scaled = g.mul(g.op('Cast', [acc], { to: FLOAT_CODE }), scale);
    if (bias) g.op('Add', [scaled, bias], {}, out);
    else g.op('Identity', [scaled], {}, out);
    summary.matmuls++;
    summary.weightBytes.before += 4 * k * n;
    summary.weightBytes.after += k * n + 4 * n;
  }

  /**
   * A stride-1 Conv as im2col + integer MatMul on the quantized activation in NHWC: ONNX Runtime's
   * ConvInteger ran the decoder 3–4× slower than the float Conv here, while the im2col copies are
   * bytes and the product runs in the same fused u8×s8 kernel as the Linear layers.
   */
  function rewriteConv(node: Node): boolean {
    const [x, wName, bias] = node.inputs as [string, string, string | undefined];
    const w = floatsOf(wName);
    if (!w || !integerConvShape(node)) return false;
    if (keep(wName)) {
      summary.keptFloat.push(wName);
      return false;
    }
    const [o, c, kh, kw] = g.shape(wName) as [number, number, number, number];
    const b = floatsOf(bias);
    if (bias && !b) throw new Error(`Conv ${node.outputs[0]}: its bias ${bias} is not a constant`);
    // A conv over a channel concatenation (the decoder's [skip, upsampled], RFB's four branches) is
    // the sum of convs over the parts, each quantized at its own range: one range for all would
    // leave the part with the smaller values a few levels only.
    const producer = producers.get(x);
    const parts: { value: string; from: number; channels: number }[] = [];
    if (producer?.op === 'Concat' && (producer.attrs.axis === 1 || producer.attrs.axis === -3)) {
      let from = 0;
      for (const part of producer.inputs) {
        const channels = g.shape(part)[1];
        if (typeof channels !== 'number') break;
        parts.push({ value: part, from, channels });
        from += channels;
      }
      if (from !== c) parts.length = 0;
    }
    if (parts.length === 0) parts.push({ value: x, from: 0, channels: c });
    const out = node.outputs[0]!;
    const [, , ho, wo] = g.shape(out) as [unknown, number, number, number];
    const target = fixedTarget(out);
    const input = target ? fixedInput(parts, x) : undefined;
    const held = target && staticTargets.has(target.value);
    if (target && (input || held)) {
      const [scale, zeroPoint] = fixedScale(target.range);
      const ys = g.scalar(scale);
      const yz = g.constant(Uint8Array.of(zeroPoint), [], 'uint8', `u8(${zeroPoint})`, true);
      let yq: string;
      if (input) yq = qlinearConv(node, input, w, b, [o, c, kh, kw], wName, ys, yz);
      else {
        // the float sum of the parts, quantized at the calibrated scale (a zero point of 0 saturates
        // at zero: the ReLU a target behind one needs)
        const partial = parts.map((part, i) => convPart(node, part.value, w, [o, c, kh, kw], [ho, wo], part.from, part.channels, parts.length === 1 ? wName : `${wName}[${part.from}:${part.from + part.channels}]`, i === 0 ? bias : undefined));
        yq = g.op('QuantizeLinear', [partial.reduce((acc, y) => g.add(acc, y)), ys, yz]);
      }
      if (target.relu) absorbed.add(target.relu);
      if (held) fixedNhwc.set(target.value, { q: [yq, ys, yz], scale });
      else {
        // read by other ops too: back to float once, at the end of the integer run
        g.values.delete(target.value);
        g.op('Transpose', [g.op('DequantizeLinear', [yq, ys, yz])], { perm: [0, 3, 1, 2] }, target.value);
        producers.set(target.value, g.nodes[g.nodes.length - 1]!);
      }
      summary.convs++;
      summary.staticConvs++;
      summary.weightBytes.before += 4 * w.length;
      summary.weightBytes.after += w.length + 4 * o * (input ? 1 : parts.length);
      return true;
    }
    g.values.delete(out);
    const partial = parts.map((part, i) => {
      const name = parts.length === 1 ? wName : `${wName}[${part.from}:${part.from + part.channels}]`;
      return convPart(node, part.value, w, [o, c, kh, kw], [ho, wo], part.from, part.channels, name, i === 0 ? bias : undefined);
    });
    const sum = partial.reduce((acc, y) => g.add(acc, y));
    g.op('Transpose', [sum], { perm: [0, 3, 1, 2] }, out);
    // a conv reading this output finds its NHWC form (quantizedNhwc)
    producers.set(out, g.nodes[g.nodes.length - 1]!);
    summary.convs++;
    summary.weightBytes.before += 4 * w.length;
    summary.weightBytes.after += w.length + 4 * o * parts.length;
    return true;
  }

  /**
   * The calibrated range of `out`, or of the ReLU that alone reads it; maps concatenated for one
   * conv share the range of them all, so that their bytes concatenate.
   */
  function fixedTarget(out: string): { value: string; range: readonly [number, number]; relu?: Node } | undefined {
    const readers = readersByValue.get(out);
    const relu = readers?.length === 1 && readers[0]!.op === 'Relu' && !ranges.has(out) ? readers[0]! : undefined;
    const value = relu ? relu.outputs[0]! : out;
    const range = commonRanges.get(value) ?? ranges.get(value);
    if (!range) return undefined;
    return relu ? { value, range, relu } : { value, range };
  }

  /** The conv input as one uint8 map at a fixed scale: a held map, or held maps of one scale concatenated. */
  function fixedInput(parts: { value: string }[], x: string): { q: [string, string, string]; scale: number } | undefined {
    if (parts.length === 1) return fixedNhwc.get(parts[0]!.value);
    const held = parts.map((p) => fixedNhwc.get(p.value));
    const first = held[0];
    if (!first || held.some((h) => !h || h.scale !== first.scale || h.q[2] !== first.q[2])) return undefined;
    const hit = fixedNhwc.get(x);
    if (hit) return hit;
    const joined = { q: [g.concat(held.map((h) => h!.q[0]), 3), first.q[1], first.q[2]] as [string, string, string], scale: first.scale };
    fixedNhwc.set(x, joined);
    return joined;
  }

  /**
   * A Conv from uint8 NHWC at a fixed scale to uint8 NHWC at a fixed scale: ONNX Runtime's
   * channels-last QLinearConv (MLAS's indirect u8×s8 convolution, no im2col copy), the bias in
   * int32 at the product's scale.
   */
  function qlinearConv(node: Node, input: { q: [string, string, string]; scale: number }, w: Float32Array, b: Float32Array | undefined, [o, c, kh, kw]: [number, number, number, number], wName: string, ys: string, yz: string): string {
    const q = quantizePerChannel(w, o, { bits });
    const [wq, wz] = weightConstant(q, [o, c, kh, kw], wName, true);
    const wsc = g.constant(q.scales, [o], 'float32', `${wName}@int8scale`);
    const wzp = wz || g.constant(new Int8Array(o), [o], 'int8', `int8zeros[${o}]`, true);
    const biasQ = Int32Array.from({ length: o }, (_, oc) => Math.round((b?.[oc] ?? 0) / (input.scale * q.scales[oc]!)));
    const [xq, xs, xz] = input.q;
    const attrs: Record<string, number | number[]> = { kernel_shape: [kh, kw], channels_last: 1 };
    for (const key of ['pads', 'dilations', 'strides'] as const) if (node.attrs[key] !== undefined) attrs[key] = node.attrs[key] as number[];
    return g.op('QLinearConv', [xq, xs, xz, wq, wsc, wzp, ys, yz, g.constant(biasQ, [o], 'int32', `${wName}@int32bias`)], attrs);
  }

  /**
   * The im2col + integer MatMul of input channels [from, from + channels) of a Conv: (B·H·W, O)
   * float, with the bias added when given.
   */
  function convPart(node: Node, x: string, w: Float32Array, [o, c, kh, kw]: [number, number, number, number], [ho, wo]: [number, number], from: number, channels: number, name: string, bias: string | undefined): string {
    const [pt, pl, pb, pr] = (node.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
    const [dh, dw] = (node.attrs.dilations as number[] | undefined) ?? [1, 1];
    const k = kh * kw * channels;
    // K runs (ky, kx, channel), the order im2col produces
    const reordered = new Float32Array(o * k);
    for (let oc = 0; oc < o; oc++) {
      for (let ic = 0; ic < channels; ic++) {
        for (let y = 0; y < kh; y++) for (let xk = 0; xk < kw; xk++) reordered[oc * k + (y * kw + xk) * channels + ic] = w[((oc * c + from + ic) * kh + y) * kw + xk]!;
      }
    }
    const q = quantizePerChannel(reordered, o, { transpose: true, bits });
    const [wq, wz] = weightConstant(q, [k, o], name);
    const ws = g.constant(q.scales, [o], 'float32', `${name}@int8scale`);
    const [nhwc, xs, xz] = quantizedNhwc(x);
    let col: string;
    if (kh === 1 && kw === 1 && !(pt || pl || pb || pr)) col = nhwc;
    else {
      // padding with the zero point is padding with real zeros
      const padded = pt || pl || pb || pr ? g.op('Pad', [nhwc, g.ints([0, pt!, pl!, 0, 0, pb!, pr!, 0]), xz]) : nhwc;
      const [, hp, wp] = g.shape(padded) as [unknown, number, number];
      // one Gather copies every tap's run of channels into place: im2col in a single pass
      col = g.op('Gather', [g.reshape(padded, [-1, hp * wp, channels]), im2colIndices(hp, wp, ho, wo, kh, kw, dh!, dw!)], { axis: 1 });
    }
    // (B, ho, wo, K) × (K, O): MatMulInteger broadcasts over the leading axes, no flattening
    if (col !== nhwc) col = g.reshape(col, [-1, ho, wo, k]);
    if (fixedNhwc.has(x)) return g.op('MatMulIntegerToFloat', bias ? [col, wq, xs, ws, xz, wz, bias] : wz ? [col, wq, xs, ws, xz, wz] : [col, wq, xs, ws, xz]);
    const acc = g.op('MatMulInteger', wz ? [col, wq, xz, wz] : [col, wq, xz]);
    const y = g.mul(g.op('Cast', [acc], { to: FLOAT_CODE }), g.mul(xs, ws));
    return bias ? g.add(y, bias) : y;
  }
}

/** A Conv the int8 rewrite handles: stride 1, one group, explicit pads. */
function integerConvShape(node: Node): boolean {
  const strides = (node.attrs.strides as number[] | undefined) ?? [1, 1];
  return node.op === 'Conv' && (node.attrs.group ?? 1) === 1 && strides.every((s) => s === 1) && node.attrs.auto_pad === undefined;
}

/** A Conv the int8 rewrite turns into integer arithmetic: the right shape, a constant weight the caller does not keep float. */
function convertibleConv(g: Graph, node: Node, keepFloat: (weightName: string) => boolean): boolean {
  return integerConvShape(node) && !!g.constantFloats(node.inputs[1]!) && !keepFloat(node.inputs[1]!);
}

/** The nodes reading each value, in graph order. */
function readersOf(nodes: readonly Node[]): Map<string, Node[]> {
  const readers = new Map<string, Node[]>();
  for (const node of nodes) {
    for (const i of node.inputs) {
      const list = readers.get(i);
      if (list) list.push(node);
      else readers.set(i, [node]);
    }
  }
  return readers;
}

/** Scale and zero point of uint8 over [min, max] widened to hold 0, as DynamicQuantizeLinear picks them. */
export function fixedScale([min, max]: readonly [number, number]): [number, number] {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return [scale, Math.min(255, Math.max(0, Math.round(-lo / scale)))];
}

/**
 * Values only int8 convolutions read — a conv's output, or the ReLU that alone reads it, read by
 * convs directly or through a channel Concat that only convs read (the RFB branches, the decoder's
 * first conv): with a calibrated range, quantizeInt8 keeps them uint8 between the convs.
 */
export function staticConvTargets(g: Graph, keepFloat: (weightName: string) => boolean = () => false): string[] {
  const readers = readersOf(g.nodes);
  const convertible = (n: Node): boolean => convertibleConv(g, n, keepFloat);
  const readsAsInput = (n: Node, v: string): boolean => convertible(n) && n.inputs[0] === v && !n.inputs.slice(1).includes(v);
  const outputs = new Set(g.outputs);
  const targets: string[] = [];
  for (const node of g.nodes) {
    if (!convertible(node)) continue;
    let v = node.outputs[0]!;
    let rs = readers.get(v) ?? [];
    if (rs.length === 1 && rs[0]!.op === 'Relu' && !outputs.has(v)) {
      v = rs[0]!.outputs[0]!;
      rs = readers.get(v) ?? [];
    }
    if (outputs.has(v) || rs.length === 0) continue;
    const onlyConvs = rs.every((r) => {
      if (readsAsInput(r, v)) return true;
      if (r.op !== 'Concat' || (r.attrs.axis !== 1 && r.attrs.axis !== -3) || outputs.has(r.outputs[0]!)) return false;
      const cat = readers.get(r.outputs[0]!) ?? [];
      return cat.length > 0 && cat.every((c) => readsAsInput(c, r.outputs[0]!));
    });
    if (onlyConvs) targets.push(v);
  }
  return targets;
}

/**
 * The values whose ranges the int8 graph uses: the maps held as uint8 (staticConvTargets) and the
 * outputs (or their ReLU) of the convs that read them, which run as QLinearConv and return to float.
 */
export function calibrationTargets(g: Graph, keepFloat: (weightName: string) => boolean = () => false): string[] {
  const held = staticConvTargets(g, keepFloat);
  const heldSet = new Set(held);
  const readers = readersOf(g.nodes);
  const producers = new Map<string, Node>();
  for (const node of g.nodes) for (const o of node.outputs) producers.set(o, node);
  const outputs = new Set(g.outputs);
  const extra: string[] = [];
  for (const node of g.nodes) {
    if (!convertibleConv(g, node, keepFloat)) continue;
    const x = node.inputs[0]!;
    const p = producers.get(x);
    const fixedIn = heldSet.has(x) || (p?.op === 'Concat' && p.inputs.every((i) => heldSet.has(i)));
    if (!fixedIn) continue;
    let v = node.outputs[0]!;
    const rs = readers.get(v) ?? [];
    if (rs.length === 1 && rs[0]!.op === 'Relu' && !outputs.has(v)) v = rs[0]!.outputs[0]!;
    if (!heldSet.has(v)) extra.push(v);
  }
  return [...held, ...extra];
}

/** Row indices into a (hp·wp) padded map for each output position and tap: (ho, wo, kh·kw). */
function im2colIndicesData(wp: number, ho: number, wo: number, kh: number, kw: number, dh: number, dw: number): BigInt64Array {
  const out = new BigInt64Array(ho * wo * kh * kw);
  let i = 0;
  for (let y = 0; y < ho; y++) for (let x = 0; x < wo; x++) for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) out[i++] = BigInt((y + ky * dh) * wp + x + kx * dw);
  return out;
}

/** A (K, N) matrix quantized per column, laid out (K, N). */
function transposedColumns(w: Float32Array, k: number, n: number, bits: 7 | 8): QuantizedWeight {
  const t = new Float32Array(w.length);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) t[c * k + r] = w[r * n + c]!;
  return quantizePerChannel(t, n, { transpose: true, bits });
}

/**
 * A Linear whose output is only split along the channel axis (attention's packed q/k/v), possibly
 * after channel-preserving reshapes, transposes and zero pads, becomes one Linear per part with the
 * chain replayed on each: the parts are produced where they are needed and the Split's copy of
 * the whole product is gone. Returns how many Splits were removed.
 */
export function splitProjections(g: Graph): number {
  const producers = new Map<string, Node>();
  const readers = new Map<string, number>();
  for (const node of g.nodes) {
    for (const o of node.outputs) producers.set(o, node);
    for (const i of node.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  for (const o of g.outputs) readers.set(o, (readers.get(o) ?? 0) + 1);
  const readOnce = (v: string): boolean => readers.get(v) === 1;
  const old = g.nodes.splice(0, g.nodes.length);
  let removed = 0;
  for (const node of old) {
    if (node.op !== 'Split' || !rewriteSplit(node)) g.nodes.push(node);
  }
  pruneDeadNodes(g);
  pruneUnusedInitializers(g);
  return removed;

  function rewriteSplit(split: Node): boolean {
    const rank = g.shape(split.inputs[0]!).length;
    const axis = (split.attrs.axis as number | undefined) ?? 0;
    if (axis !== -1 && axis !== rank - 1) return false;
    const sizes = g.constantInts(split.inputs[1] ?? '');
    if (!sizes) return false;
    // walk back to the Linear through channel-preserving ops
    const chain: Node[] = [];
    let v = split.inputs[0]!;
    let p = producers.get(v);
    while (p && readOnce(v) && channelPreserving(p)) {
      chain.unshift(p);
      v = p.inputs[0]!;
      p = producers.get(v);
    }
    if (p?.op !== 'Gemm' || !readOnce(v) || p.attrs.transB !== 1 || p.attrs.transA === 1 || (p.attrs.alpha ?? 1) !== 1 || (p.attrs.beta ?? 1) !== 1) return false;
    const [flat, wName, bias] = p.inputs as [string, string, string | undefined];
    const w = g.constantFloats(wName);
    const b = bias ? g.constantFloats(bias) : undefined;
    if (!w || (bias && (!b || g.shape(bias).length !== 1))) return false;
    const [channels, k] = g.shape(wName) as [number, number];
    if (sizes.reduce((a, c) => a + c, 0) !== channels) return false;
    let from = 0;
    sizes.forEach((size, part) => {
      const range = `[${from}:${from + size}]`;
      const wPart = g.constant(w.slice(from * k, (from + size) * k), [size, k], 'float32', `${wName}${range}`);
      const inputs = [flat, wPart];
      if (b) inputs.push(g.constant(b.slice(from, from + size), [size], 'float32', `${bias}${range}`));
      let y = g.op('Gemm', inputs, { transB: 1 });
      for (const link of chain) y = replay(link, y, size);
      const out = split.outputs[part]!;
      g.values.delete(out);
      g.op('Identity', [y], {}, out);
      from += size;
    });
    removed++;
    return true;
  }

  /** Reshape, Transpose or zero Pad that keeps the last axis as the channel axis, untouched. */
  function channelPreserving(node: Node): boolean {
    const inShape = g.shape(node.inputs[0]!);
    const outShape = g.shape(node.outputs[0]!);
    if (inShape.at(-1) !== outShape.at(-1) || typeof outShape.at(-1) !== 'number') return false;
    if (node.op === 'Reshape') return g.constantInts(node.inputs[1]!)?.at(-1) === outShape.at(-1);
    if (node.op === 'Transpose') {
      const perm = node.attrs.perm as number[] | undefined;
      return !!perm && perm.at(-1) === perm.length - 1;
    }
    if (node.op === 'Pad') {
      const pads = g.constantInts(node.inputs[1]!);
      const mode = (node.attrs.mode as string | undefined) ?? 'constant';
      return !!pads && mode === 'constant' && !node.inputs[2] && pads[pads.length / 2 - 1] === 0 && pads[pads.length - 1] === 0;
    }
    return false;
  }

  function replay(node: Node, x: string, channels: number): string {
    if (node.op === 'Reshape') {
      const shape = g.constantInts(node.inputs[1]!)!;
      return g.reshape(x, [...shape.slice(0, -1), channels]);
    }
    if (node.op === 'Transpose') return g.transpose(x, node.attrs.perm as number[]);
    return g.op('Pad', [x, node.inputs[1]!], node.attrs);
  }
}

/** Drops nodes none of whose outputs is read or a graph output, until none is left. */
export function pruneDeadNodes(g: Graph): number {
  let removed = 0;
  for (;;) {
    const read = new Set<string>(g.outputs);
    for (const node of g.nodes) for (const i of node.inputs) read.add(i);
    const dead = g.nodes.filter((n) => !n.outputs.some((o) => read.has(o)));
    if (dead.length === 0) return removed;
    for (const node of dead) {
      g.nodes.splice(g.nodes.indexOf(node), 1);
      for (const o of node.outputs) g.values.delete(o);
    }
    removed += dead.length;
  }
}

/** Drops initializers no node reads and that are not graph outputs. */
export function pruneUnusedInitializers(g: Graph): string[] {
  const used = new Set<string>(g.outputs);
  for (const node of g.nodes) for (const i of node.inputs) used.add(i);
  const removed: string[] = [];
  for (const name of [...g.initializers.keys()]) {
    if (used.has(name)) continue;
    g.initializers.delete(name);
    g.values.delete(name);
    removed.push(name);
  }
  return removed;
}

// ---- float16 graphs (GPU providers) ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a float32 value, rounded to nearest even (overflow → ±Inf, NaN kept). */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // a carry out of the mantissa rolls into the exponent, which is the right answer (up to Inf)
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function toHalfArray(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = toHalfBits(data[i]!);
  return out;
}

const HALF_CODE = ONNX_DTYPE.float16;

/**
 * Rewrites a float32 inference graph in place into float16 weights and activations for GPU
 * providers. The graph's inputs and outputs stay float32 (cast at the edges), and LayerNorm runs
 * in float32 between casts: its variance of large activations overflows in half precision.
 * Attention's softmax is inside ONNX Runtime's MultiHeadAttention, which accumulates in float32.
 */
export function convertToFloat16(g: Graph): { initializers: number } {
  const stay32 = new Set<string>();
  for (const node of g.nodes) {
    // Resize scales are float32 whatever the data's type; LayerNorm's parameters go with its float32 input
    if (node.op === 'Resize' && node.inputs[2]) stay32.add(node.inputs[2]);
    if (node.op === 'LayerNormalization') for (const p of node.inputs.slice(1)) if (p) stay32.add(p);
  }
  const rename = new Map<string, string>();
  const sub = (name: string): string => rename.get(name) ?? name;
  const old = g.nodes.splice(0, g.nodes.length);
  const inputs = new Set(g.inputs);
  const outputs = new Set(g.outputs);
  // the graph's float32 inputs are cast once at the start
  for (const name of g.inputs) {
    if (g.info(name).dtype !== 'float32') continue;
    rename.set(name, g.op('Cast', [name], { to: HALF_CODE }));
  }
  for (const node of old) {
    node.inputs = node.inputs.map((i) => (i ? sub(i) : i));
    if (node.op === 'LayerNormalization') {
      const x32 = g.op('Cast', [node.inputs[0]!], { to: FLOAT_CODE });
      const out = node.outputs[0]!;
      const y32 = `${out}@f32`;
      g.values.set(y32, { name: y32, dtype: 'float32', shape: [...g.shape(out)] });
      node.inputs[0] = x32;
      node.outputs[0] = y32;
      g.nodes.push(node);
      g.values.delete(out);
      g.op('Cast', [y32], { to: HALF_CODE }, out);
      stay32.add(y32);
      continue;
    }
    g.nodes.push(node);
  }
  // every other float32 value becomes half, graph inputs and LayerNorm's float32 side excepted
  for (const node of g.nodes) if (node.op === 'Cast' && node.attrs.to === FLOAT_CODE) stay32.add(node.outputs[0]!);
  for (const info of g.values.values()) {
    if (info.dtype === 'float32' && !stay32.has(info.name) && !inputs.has(info.name)) info.dtype = 'float16';
  }
  let converted = 0;
  for (const init of g.initializers.values()) {
    if (init.dtype !== 'float32' || stay32.has(init.name)) continue;
    init.data = toHalfArray(init.data as Float32Array);
    init.dtype = 'float16';
    converted++;
  }
  // outputs leave as float32 under their own names
  for (let i = 0; i < g.outputs.length; i++) {
    const name = g.outputs[i]!;
    if (!outputs.has(name) || g.info(name).dtype !== 'float16') continue;
    const half = `${name}@f16`;
    for (const node of g.nodes) {
      node.outputs = node.outputs.map((o) => (o === name ? half : o));
      node.inputs = node.inputs.map((x) => (x === name ? half : x));
    }
    g.values.set(half, { ...g.info(name), name: half });
    g.values.delete(name);
    g.op('Cast', [half], { to: FLOAT_CODE }, name);
  }
  return { initializers: converted };
}
