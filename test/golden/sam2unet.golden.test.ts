/**
 * Golden: SAM2-UNet (eval mode) against the official code's out/out1/out2
 * (../shared/golden/sam2unet_mini), from the genuine state_dict .pth and from the safetensors copy,
 * with BatchNorm folded (inference path) and unfolded (the path training differentiates).
 * Tolerance: manifest.json's forward_max_abs (1e-4), per output.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildModel, SAM2UNET_OUTPUTS } from '../../main/core/model/engine.ts';
import { loadOrt, openSession } from '../../main/core/onnx/session.ts';
import { loadCheckpoint } from './checkpoints.ts';
import { SAM2UNET_MINI, manifestConfig, maxAbsDiff, readSafetensors, type StateDict } from './helpers.ts';

describe('SAM2-UNet golden (sam2unet_mini, 352×352)', async () => {
  const tolerance = (JSON.parse(await readFile(resolve(SAM2UNET_MINI, 'manifest.json'), 'utf8')) as { tolerance: { forward_max_abs: number } }).tolerance.forward_max_abs;
  let io: StateDict;
  beforeAll(async () => {
    io = await readSafetensors(resolve(SAM2UNET_MINI, 'infer.safetensors'));
  });

  const cases = [
    { file: 'sam2unet.pth', fold: true, primitive: false },
    { file: 'model.safetensors', fold: true, primitive: false },
    // the form the training graph differentiates: explicit BatchNorm, MatMul + Transpose linears
    { file: 'model.safetensors', fold: false, primitive: true },
  ];
  for (const { file, fold, primitive } of cases) {
    it(`matches out, out1, out2 from ${file} (BatchNorm ${fold ? 'folded' : 'explicit'}${primitive ? ', primitive ops only' : ''}) within ${tolerance}`, async () => {
      const ckpt = await loadCheckpoint(resolve(SAM2UNET_MINI, file));
      expect(ckpt.kind).toBe('sam2unet');
      expect(ckpt.config).toEqual(await manifestConfig(SAM2UNET_MINI));
      expect(ckpt.outChannels).toBe(1);
      const model = await buildModel('sam2unet', ckpt.config, ckpt.weights, { height: 352, width: 352, outChannels: ckpt.outChannels, foldBatchNorm: fold, primitiveOnly: primitive, cache: false });
      const { session } = await openSession(model.source as Uint8Array, { device: 'cpu' });
      const ort = await loadOrt();
      const input = io.get('input')!;
      const outputs = await session.run({ input: new ort.Tensor('float32', input.data, input.shape) });
      const errors: Record<string, number> = {};
      for (const name of SAM2UNET_OUTPUTS) {
        const expected = io.get(name)!;
        expect(outputs[name]!.dims).toEqual(expected.shape);
        errors[name] = maxAbsDiff(outputs[name]!.data as Float32Array, expected.data);
      }
      console.log(`sam2unet_mini from ${file} (fold ${fold}, primitive ${primitive}): max abs error ${JSON.stringify(errors)}`);
      for (const name of SAM2UNET_OUTPUTS) expect(errors[name]).toBeLessThanOrEqual(tolerance);
      await session.release();
    });
  }
});
