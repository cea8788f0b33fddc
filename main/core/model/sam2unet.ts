/**
 * SAM2-UNet (official SAM2UNet.py): Hiera trunk with adapters, RFB modules, U-Net decoder and
 * three heads, as an IR graph in NCHW. Eval-mode BatchNorm, folded into the convolutions unless
 * `foldBatchNorm` is false (the training graph keeps the official BN parameters).
 */
import { UserError } from '../errors.ts';
import type { Graph } from '../onnx/ir.ts';
import { conv2d, convBn, upsampleBilinear, type Weights } from '../onnx/layers.ts';
import type { HieraConfig } from './config.ts';
import { buildHieraTrunk } from './hiera.ts';
import { SAM2UNET_ENCODER_KEYS } from './keys.ts';
import { DECODER_CHANNELS } from './keys.ts';

export interface DecoderOptions {
  outChannels: number;
  foldBatchNorm: boolean;
}

interface Ctx {
  g: Graph;
  w: Weights;
  fold: boolean;
}

/** BasicConv2d: Conv2d (no bias) → BatchNorm2d, no activation. */
function basicConv(c: Ctx, x: string, prefix: string, inC: number, outC: number, k: [number, number], pad: [number, number] = [0, 0], dilation = 1): string {
  return convBn(c.g, c.w, x, `${prefix}.conv`, `${prefix}.bn`, [outC, inC, k[0], k[1]], { pad, dilation, fold: c.fold });
}

function rfb(c: Ctx, x: string, prefix: string, inC: number): string {
  const o = DECODER_CHANNELS;
  return c.g.scope(prefix, () => {
    const b0 = basicConv(c, x, `${prefix}.branch0.0`, inC, o, [1, 1]);
    const branches = [b0];
    for (const [b, k] of [[1, 3], [2, 5], [3, 7]] as const) {
      const p = `${prefix}.branch${b}`;
      const half = (k - 1) / 2;
      let y = basicConv(c, x, `${p}.0`, inC, o, [1, 1]);
      y = basicConv(c, y, `${p}.1`, o, o, [1, k], [0, half]);
      y = basicConv(c, y, `${p}.2`, o, o, [k, 1], [half, 0]);
      y = basicConv(c, y, `${p}.3`, o, o, [3, 3], [k, k], k);
      branches.push(y);
    }
    const cat = basicConv(c, c.g.concat(branches, 1), `${prefix}.conv_cat`, 4 * o, o, [3, 3], [1, 1]);
    const res = basicConv(c, x, `${prefix}.conv_res`, inC, o, [1, 1]);
    return c.g.relu(c.g.add(cat, res));
  });
}

/** Up: bilinear ×2 (align_corners) of `x`, padded to `skip`'s size, cat([skip, up]), DoubleConv(128 → 64 → 64). */
function up(c: Ctx, x: string, skip: string, prefix: string): string {
  const { g } = c;
  return g.scope(prefix, () => {
    let u = upsampleBilinear(g, x, 2, true);
    const [, , uh, uw] = g.shape(u) as number[];
    const [, , sh, sw] = g.shape(skip) as number[];
    const dy = sh! - uh!;
    const dx = sw! - uw!;
    if (dy < 0 || dx < 0) throw new UserError(`${prefix}: upsampled map ${uh}×${uw} larger than the skip ${sh}×${sw}`);
    if (dy || dx) u = g.pad(u, [0, 0, dy >> 1, dx >> 1, 0, 0, dy - (dy >> 1), dx - (dx >> 1)]);
    const cat = g.concat([skip, u], 1);
    const inC = 2 * DECODER_CHANNELS;
    const mid = inC / 2;
    let y = g.relu(convBn(g, c.w, cat, `${prefix}.conv.double_conv.0`, `${prefix}.conv.double_conv.1`, [mid, inC, 3, 3], { pad: [1, 1], fold: c.fold }));
    y = g.relu(convBn(g, c.w, y, `${prefix}.conv.double_conv.3`, `${prefix}.conv.double_conv.4`, [DECODER_CHANNELS, mid, 3, 3], { pad: [1, 1], fold: c.fold }));
    return y;
  });
}

export interface Sam2UNetOutputs {
  out: string;
  out1: string;
  out2: string;
}

/** Appends SAM2-UNet to `g` reading NCHW `input`; returns the logits (B, outChannels, H, W). */
export function buildSam2UNet(g: Graph, input: string, config: HieraConfig, w: Weights, height: number, width: number, opts: DecoderOptions): Sam2UNetOutputs {
  const trunk = buildHieraTrunk(g, input, config, w, SAM2UNET_ENCODER_KEYS, height, width);
  const c: Ctx = { g, w, fold: opts.foldBatchNorm };
  const [x1, x2, x3, x4] = trunk.features.map((f, i) => rfb(c, f, `rfb${i + 1}`, trunk.featureShapes[i]![0])) as [string, string, string, string];
  const head = (x: string, prefix: string, factor: number): string =>
    upsampleBilinear(g, conv2d(g, w, x, prefix, [opts.outChannels, DECODER_CHANNELS, 1, 1], { bias: true }), factor, false);
  let x = up(c, x4, x3, 'up1');
  const out1 = head(x, 'side1', 16);
  x = up(c, x, x2, 'up2');
  const out2 = head(x, 'side2', 8);
  x = up(c, x, x1, 'up3');
  const out = head(x, 'head', 4);
  return { out, out1, out2 };
}
