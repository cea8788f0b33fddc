/**
 * The Hiera trunk (SAM2's hieradet.py) as an IR graph, exactly per model.md. Tokens flow as NHWC
 * (B, H, W, C); the four stage features leave as NCHW.
 */
import { UserError } from '../errors.ts';
import type { Graph } from '../onnx/ir.ts';
import { layerNorm, linear, linearBias, type Weights } from '../onnx/layers.ts';
import { blockPlan, type BlockPlan, type HieraConfig } from './config.ts';
import { ADAPTER_HIDDEN, type TrunkKeys } from './keys.ts';
import type { Tensor } from './tensor.ts';

export const HIERA_LN_EPSILON = 1e-6;

// ---- bicubic interpolation, torch.nn.functional.interpolate(mode='bicubic', align_corners=False) ----

const CUBIC_A = -0.75;

function cubicWeights(t: number): [number, number, number, number] {
  const a = CUBIC_A;
  const near = (x: number): number => ((a + 2) * x - (a + 3)) * x * x + 1;
  const far = (x: number): number => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Source taps and weights along one axis (PyTorch's source index: no clamping of the coordinate, clamped taps). */
function cubicAxis(inSize: number, outSize: number): { taps: Int32Array; weights: Float64Array } {
  const taps = new Int32Array(outSize * 4);
  const weights = new Float64Array(outSize * 4);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const real = scale * (o + 0.5) - 0.5;
    const base = Math.floor(real);
    const w = cubicWeights(real - base);
    for (let k = 0; k < 4; k++) {
      taps[o * 4 + k] = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      weights[o * 4 + k] = w[k]!;
    }
  }
  return { taps, weights };
}

/**
 * Bicubic resize (a = −0.75, align_corners False, border taps clamped) of a (C, h, w) array to
 * (C, outH, outW), matching PyTorch's upsample_bicubic2d.
 */
export function resizeBicubic(data: Float32Array, channels: number, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(channels * outH * outW);
  if (h === outH && w === outW) {
    out.set(data.subarray(0, out.length));
    return out;
  }
  const ys = cubicAxis(h, outH);
  const xs = cubicAxis(w, outW);
  const row = new Float64Array(4);
  for (let c = 0; c < channels; c++) {
    const plane = c * h * w;
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        for (let ky = 0; ky < 4; ky++) {
          const src = plane + ys.taps[oy * 4 + ky]! * w;
          let acc = 0;
          for (let kx = 0; kx < 4; kx++) acc += data[src + xs.taps[ox * 4 + kx]!]! * xs.weights[ox * 4 + kx]!;
          row[ky] = acc;
        }
        let v = 0;
        for (let ky = 0; ky < 4; ky++) v += row[ky]! * ys.weights[oy * 4 + ky]!;
        out[(c * outH + oy) * outW + ox] = v;
      }
    }
  }
  return out;
}

/** pos_embed resized to (h, w) plus pos_embed_window tiled, as an NHWC (1, h, w, C) constant. */
export function positionalEmbedding(posEmbed: Tensor, posEmbedWindow: Tensor, h: number, w: number): Float32Array {
  const [, c, bh, bw] = posEmbed.shape as [number, number, number, number];
  const [, , wh, ww] = posEmbedWindow.shape as [number, number, number, number];
  if (h % wh !== 0 || w % ww !== 0) throw new UserError(`the token grid ${h}×${w} is not a multiple of the ${wh}×${ww} window embedding; use an input size that is a multiple of 32`);
  const resized = resizeBicubic(posEmbed.data, c, bh, bw, h, w);
  const out = new Float32Array(h * w * c);
  const win = posEmbedWindow.data;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      const wy = y % wh;
      const wx = x % ww;
      for (let k = 0; k < c; k++) out[o + k] = resized[(k * h + y) * w + x]! + win[(k * wh + wy) * ww + wx]!;
    }
  }
  return out;
}

/** The interpolation of cubicAxis as a dense (out × in) matrix, so the resize is a MatMul. */
function cubicMatrix(inSize: number, outSize: number): Float32Array {
  const { taps, weights } = cubicAxis(inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) for (let k = 0; k < 4; k++) m[o * inSize + taps[o * 4 + k]!]! += weights[o * 4 + k]!;
  return Float32Array.from(m);
}

/**
 * positionalEmbedding as graph ops (bicubic resize = Ry·P·Rxᵀ, window embedding tiled by
 * Expand), for graphs that train the trunk: gradients then reach pos_embed and pos_embed_window.
 */
function positionalEmbeddingOps(g: Graph, posEmbed: string, posEmbedWindow: string, h: number, w: number): string {
  const [, c, bh, bw] = g.shape(posEmbed) as number[];
  const [, , wh, ww] = g.shape(posEmbedWindow) as number[];
  if (h % wh! !== 0 || w % ww! !== 0) throw new UserError(`the token grid ${h}×${w} is not a multiple of the ${wh}×${ww} window embedding; use an input size that is a multiple of 32`);
  const ry = g.constant(cubicMatrix(bh!, h), [h, bh!]);
  const rxT = g.constant(cubicMatrix(bw!, w), [w, bw!]);
  const resized = g.matmul(g.matmul(ry, posEmbed), g.transpose(rxT, [1, 0]));
  const tiled = g.reshape(
    g.op('Expand', [g.reshape(posEmbedWindow, [1, c!, 1, wh!, 1, ww!]), g.ints([1, c!, h / wh!, wh!, w / ww!, ww!])]),
    [1, c!, h, w],
  );
  return g.transpose(g.add(resized, tiled), [0, 2, 3, 1]);
}

// ---- the trunk ----

export interface TrunkBuild {
  /** NCHW stage features */
  features: string[];
  featureShapes: [number, number, number][];
}

/** 2×2 max-pool (stride 2, floor) of an NHWC map, written as a reshape and a reduction. */
function maxPool2x2(g: Graph, x: string, h: number, w: number, c: number): string {
  let src = x;
  if (h % 2 || w % 2) src = g.slice(x, [0, 0], [h - (h % 2), w - (w % 2)], [1, 2]);
  const r = g.reshape(src, [-1, h >> 1, 2, w >> 1, 2, c]);
  return g.reduceMax(r, [2, 4]);
}

/**
 * Scaled dot-product attention over token groups: qkv (N, rh·rw, 3·dimOut) → (N, Lq, dimOut),
 * before the output projection; queries max-pooled 2×2 over the rh×rw group when the block pools.
 */
function attentionCore(g: Graph, p: BlockPlan, qkv: string, rh: number, rw: number, qkvBias?: string): string {
  const { index: i, dimOut, heads } = p;
  const hd = dimOut / heads;
  const L = rh * rw;
  const [q0, k, v] = g.split(qkv, [dimOut, dimOut, dimOut], 2) as [string, string, string];
  let q = q0;
  let Lq = L;
  if (p.poolQuery) {
    if (rh % 2 || rw % 2) throw new UserError(`block ${i}: query pooling needs an even window, got ${rh}×${rw}`);
    q = g.reshape(g.reduceMax(g.reshape(q, [-1, rh >> 1, 2, rw >> 1, 2, dimOut]), [2, 4]), [-1, L >> 2, dimOut]);
    Lq = L >> 2;
  }
  // MultiHeadAttention adds a packed q/k/v bias while it lays the heads out (max-pooling q first is
  // the same: max(q + b) = max(q) + b for a per-channel b)
  if (g.inferenceOnly) return g.op('MultiHeadAttention', qkvBias ? [q, k, v, qkvBias] : [q, k, v], { num_heads: heads, scale: 1 / Math.sqrt(hd) });
  if (qkvBias) throw new Error('a separate q/k/v bias is for inference graphs');
  q = g.mul(q, g.scalar(1 / Math.sqrt(hd)));
  if (heads === 1) return g.matmul(g.softmax(g.matmul(q, g.transpose(k, [0, 2, 1])), -1), v);
  const qh = g.transpose(g.reshape(q, [-1, Lq, heads, hd]), [0, 2, 1, 3]);
  const kt = g.transpose(g.reshape(k, [-1, L, heads, hd]), [0, 2, 3, 1]);
  const vh = g.transpose(g.reshape(v, [-1, L, heads, hd]), [0, 2, 1, 3]);
  const o = g.matmul(g.softmax(g.matmul(qh, kt), -1), vh);
  return g.reshape(g.transpose(o, [0, 2, 1, 3]), [-1, Lq, dimOut]);
}

/** (B, nh·win, nw·win, C) → (B·nh·nw, win², C); a single window needs no transpose. */
function partition(g: Graph, x: string, nh: number, nw: number, win: number, c: number): string {
  if (nh === 1 && nw === 1) return g.reshape(x, [-1, win * win, c]);
  return g.reshape(g.transpose(g.reshape(x, [-1, nh, win, nw, win, c]), [0, 1, 3, 2, 4, 5]), [-1, win * win, c]);
}

/** The inverse of partition. */
function unpartition(g: Graph, x: string, nh: number, nw: number, win: number, c: number): string {
  if (nh === 1 && nw === 1) return g.reshape(x, [-1, win, win, c]);
  return g.reshape(g.transpose(g.reshape(x, [-1, nh, nw, win, win, c]), [0, 1, 3, 2, 4, 5]), [-1, nh * win, nw * win, c]);
}

/** One MultiScaleBlock on an NHWC map (B, h, w, dim) → (B, h', w', dimOut). */
function block(g: Graph, w: Weights, keys: TrunkKeys, p: BlockPlan, x: string, h: number, wd: number): { x: string; h: number; w: number } {
  const { index: i, dim, dimOut } = p;
  if (keys.adapter) {
    const a = g.gelu(linear(g, w, x, keys.adapter(i, 0), dim, ADAPTER_HIDDEN));
    x = g.add(x, g.gelu(linear(g, w, a, keys.adapter(i, 2), ADAPTER_HIDDEN, dim)));
  }
  const xn = layerNorm(g, w, x, keys.block(i, 'norm1'), dim, HIERA_LN_EPSILON);
  let shortcut = x;
  const hs = p.poolQuery ? h >> 1 : h;
  const ws = p.poolQuery ? wd >> 1 : wd;
  if (dim !== dimOut) {
    const projected = linear(g, w, xn, keys.block(i, 'proj'), dim, dimOut);
    shortcut = p.poolQuery ? maxPool2x2(g, projected, h, wd, dimOut) : projected;
  } else if (p.poolQuery) {
    // SAM2 pools the shortcut only through the projection; a pooling block without a dim change
    // would not add up, and no SAM2 configuration has one
    throw new UserError(`block ${i}: query pooling without a dimension change is not supported`);
  }

  const qkvKey = keys.block(i, 'attn.qkv');
  let attn: string;
  let qkvBias: string | undefined;
  const win = p.window;
  if (win > 0) {
    const padH = (win - (h % win)) % win;
    const padW = (win - (wd % win)) % win;
    const nh = (h + padH) / win;
    const nw = (wd + padW) / win;
    let windows: string;
    if (padH || padW) {
      // SAM2 zero-pads the normalised tokens before qkv, so a padded token's qkv is the bias alone:
      // project the real tokens only, zero-pad, then add the bias everywhere (same numbers, fewer FLOPs)
      let qkv = g.pad(linear(g, w, xn, qkvKey, dim, 3 * dimOut, { bias: false }), [0, 0, 0, 0, 0, padH, padW, 0]);
      // an inference graph leaves the bias to the attention op: one pass over the padded windows fewer
      if (g.inferenceOnly) qkvBias = linearBias(g, w, qkvKey, 3 * dimOut);
      else qkv = g.add(qkv, linearBias(g, w, qkvKey, 3 * dimOut));
      windows = partition(g, qkv, nh, nw, win, 3 * dimOut);
    } else {
      // without padding, partition the narrower normalised tokens and project them afterwards
      windows = linear(g, w, partition(g, xn, nh, nw, win, dim), qkvKey, dim, 3 * dimOut);
    }
    const o = attentionCore(g, p, windows, win, win, qkvBias);
    const wq = p.poolQuery ? win >> 1 : win;
    attn = unpartition(g, o, nh, nw, wq, dimOut);
    // the output projection is per token: crop the padding first (fewer FLOPs, same numbers)
    if (nh * wq !== hs || nw * wq !== ws) attn = g.slice(attn, [0, 0], [hs, ws], [1, 2]);
  } else {
    const qkv = g.reshape(linear(g, w, xn, qkvKey, dim, 3 * dimOut), [-1, h * wd, 3 * dimOut]);
    attn = g.reshape(attentionCore(g, p, qkv, h, wd), [-1, hs, ws, dimOut]);
  }
  attn = linear(g, w, attn, keys.block(i, 'attn.proj'), dimOut, dimOut);
  x = g.add(shortcut, attn);
  const n2 = layerNorm(g, w, x, keys.block(i, 'norm2'), dimOut, HIERA_LN_EPSILON);
  const hidden = g.gelu(linear(g, w, n2, keys.block(i, 'mlp.layers.0'), dimOut, 4 * dimOut));
  x = g.add(x, linear(g, w, hidden, keys.block(i, 'mlp.layers.1'), 4 * dimOut, dimOut));
  return { x, h: hs, w: ws };
}

/**
 * Appends the trunk to `g`, reading NCHW `input` (B, 3, height, width), height and width multiples of 32.
 */
export function buildHieraTrunk(g: Graph, input: string, config: HieraConfig, w: Weights, keys: TrunkKeys, height: number, width: number): TrunkBuild {
  if (height % 32 || width % 32 || height <= 0 || width <= 0) throw new UserError(`input size ${height}×${width}: height and width must be positive multiples of 32`);
  const c = config.embed_dim;
  const patchKey = keys.trunk('patch_embed.proj');
  const weight = g.param(`${patchKey}.weight`, w.get(`${patchKey}.weight`, [c, 3, 7, 7]));
  const bias = g.param(`${patchKey}.bias`, w.get(`${patchKey}.bias`, [c]));
  let h = height / 4;
  let wd = width / 4;
  let x = g.scope('patch_embed', () => g.transpose(g.op('Conv', [input, weight, bias], { kernel_shape: [7, 7], strides: [4, 4], pads: [3, 3, 3, 3] }), [0, 2, 3, 1]));
  const bkg = config.window_pos_embed_bkg_spatial_size;
  const w0 = config.window_spec[0]!;
  const posEmbed = w.get(keys.trunk('pos_embed'), [1, c, bkg[0], bkg[1]]);
  const posEmbedWindow = w.get(keys.trunk('pos_embed_window'), [1, c, w0, w0]);
  const pos = g.trainable
    ? positionalEmbeddingOps(g, g.param(keys.trunk('pos_embed'), posEmbed), g.param(keys.trunk('pos_embed_window'), posEmbedWindow), h, wd)
    : g.constant(positionalEmbedding(posEmbed, posEmbedWindow, h, wd), [1, h, wd, c], 'float32', `${keys.trunk('pos_embed')}@${h}x${wd}`);
  x = g.add(x, pos);
  const features: string[] = [];
  const featureShapes: [number, number, number][] = [];
  for (const p of blockPlan(config)) {
    const r = g.scope(`blocks.${p.index}`, () => block(g, w, keys, p, x, h, wd));
    x = r.x;
    h = r.h;
    wd = r.w;
    if (p.stageEnd) {
      features.push(g.transpose(x, [0, 3, 1, 2]));
      featureShapes.push([p.dimOut, h, wd]);
    }
  }
  return { features, featureShapes };
}
