/**
 * Golden: the Hiera trunk against the official SAM2 code's features (../shared/golden/hiera_mini),
 * built from the genuine torch.save checkpoint and from the safetensors copy of the same weights.
 * Tolerance: manifest.json's max_abs (1e-4), per output.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel, TRUNK_OUTPUTS } from '../../main/core/model/engine.ts';
import { SessionClient } from '../../main/core/onnx/session.ts';
import { loadCheckpoint } from './checkpoints.ts';
import { HIERA_MINI, manifestConfig, maxAbsDiff, readSafetensors, type StateDict } from './helpers.ts';

describe('Hiera trunk golden (hiera_mini, 352×352)', async () => {
  const tolerance = (JSON.parse(await readFile(resolve(HIERA_MINI, 'manifest.json'), 'utf8')) as { tolerance: { max_abs: number } }).tolerance.max_abs;
  let io: StateDict;
  beforeAll(async () => {
    io = await readSafetensors(resolve(HIERA_MINI, 'io.safetensors'));
  });

  const clients: SessionClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
  });

  for (const file of ['sam2_checkpoint.pt', 'trunk.safetensors']) {
    it(`matches feat0…feat3 from ${file} within ${tolerance}`, async () => {
      const ckpt = await loadCheckpoint(resolve(HIERA_MINI, file));
      expect(ckpt.kind).toBe('trunk');
      expect(ckpt.config).toEqual(await manifestConfig(HIERA_MINI));
      const model = await buildModel('trunk', ckpt.config, ckpt.weights, { height: 352, width: 352, cache: false });
      const client = await SessionClient.create(model.source as Uint8Array, { device: 'cpu' });
      clients.push(client);
      expect(client.provider).toBe('cpu');
      const input = io.get('input')!;
      const outputs = await client.run({ input: { dims: input.shape, data: input.data } }, { copy: true });
      const errors: Record<string, number> = {};
      for (const name of TRUNK_OUTPUTS) {
        const expected = io.get(name)!;
        expect(outputs[name]!.dims).toEqual(expected.shape);
        errors[name] = maxAbsDiff(outputs[name]!.data, expected.data);
      }
      console.log(`hiera_mini from ${file}: max abs error ${JSON.stringify(errors)}`);
      for (const name of TRUNK_OUTPUTS) expect(errors[name]).toBeLessThanOrEqual(tolerance);
    });
  }
});
