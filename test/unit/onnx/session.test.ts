import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../main/core/errors.ts';
import { buildModel, cacheKey } from '../../../main/core/model/engine.ts';
import { HIERA_PRESETS, type HieraConfig } from '../../../main/core/model/config.ts';
import { Graph } from '../../../main/core/onnx/ir.ts';
import { RandomWeights } from '../../../main/core/onnx/layers.ts';
import { parseDevice, physicalCores, providerCandidates, SessionClient } from '../../../main/core/onnx/session.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';

function doubler(): Uint8Array {
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 3]);
  g.output('y', g.mul(x, g.scalar(2)));
  return joinChunks(serializeModel(g));
}

const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-session-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('SessionClient (worker thread)', () => {
  it('runs a model, reports the provider, transfers inputs and returns outputs', async () => {
    const client = await SessionClient.create(doubler(), { device: 'cpu', threads: 1 });
    try {
      expect(client.provider).toBe('cpu');
      expect(client.threads).toBe(1);
      expect(client.inputNames).toEqual(['x']);
      const data = Float32Array.of(1, 2, 3, 4, 5, 6);
      const out = await client.run({ x: { dims: [2, 3], data } });
      expect(data.length).toBe(0); // transferred to the worker, not copied
      expect(out.y!.dims).toEqual([2, 3]);
      expect([...out.y!.data]).toEqual([2, 4, 6, 8, 10, 12]);
      const kept = Float32Array.of(1, 1, 1);
      await client.run({ x: { dims: [1, 3], data: kept } }, { copy: true });
      expect(kept.length).toBe(3);
    } finally {
      await client.dispose();
    }
  });

  it('rejects a bad feed with ONNX Runtime’s message and keeps working', async () => {
    const client = await SessionClient.create(doubler(), { device: 'cpu' });
    try {
      await expect(client.run({ nope: { dims: [1, 3], data: new Float32Array(3) } })).rejects.toThrow(/nope|input/i);
      const out = await client.run({ x: { dims: [1, 3], data: Float32Array.of(1, 1, 1) } });
      expect([...out.y!.data]).toEqual([2, 2, 2]);
    } finally {
      await client.dispose();
    }
    await expect(client.run({ x: { dims: [1, 3], data: new Float32Array(3) } })).rejects.toThrow(/disposed/);
  });

  it('dispose() lets a run already inside ONNX Runtime finish instead of killing the process', async () => {
    // a model heavy enough that dispose() arrives while session.run is still executing
    const g = new Graph();
    const x = g.input('x', 'float32', [1, 512, 512]);
    let y = x;
    for (let i = 0; i < 6; i++) y = g.matmul(y, x);
    g.output('y', y);
    const client = await SessionClient.create(joinChunks(serializeModel(g)), { device: 'cpu', threads: 1 });
    const run = client.run({ x: { dims: [1, 512, 512], data: new Float32Array(512 * 512).fill(1e-3) } });
    await client.dispose();
    const out = await run;
    expect(out.y!.dims).toEqual([1, 512, 512]);
  });

  it('falls back from an unavailable provider with a named message, never silently', async () => {
    const messages: string[] = [];
    const wanted = process.platform === 'darwin' ? 'dml' : 'coreml';
    const client = await SessionClient.create(doubler(), { device: wanted, onMessage: (m) => messages.push(m) });
    try {
      expect(client.provider).toBe('cpu');
      expect(messages.join('\n')).toMatch(/(DirectML|CoreML) requested but unavailable: .*falling back to CPU/);
      expect(client.messages).toEqual(messages);
    } finally {
      await client.dispose();
    }
  });

  it('names a missing or corrupt model file', async () => {
    await expect(SessionClient.create(join(tmp, 'missing.onnx'))).rejects.toThrow(/missing\.onnx: model file not found/);
    await expect(SessionClient.create(Uint8Array.of(1, 2, 3, 4), { device: 'cpu' })).rejects.toThrow(UserError);
  });
});

describe('devices', () => {
  it('parses --device values and orders providers', () => {
    expect(parseDevice(undefined)).toBe('auto');
    expect(parseDevice('CUDA')).toBe('cuda');
    expect(() => parseDevice('tpu')).toThrow(/unknown device "tpu"/);
    expect(providerCandidates('auto')).toEqual(['cuda', 'dml', 'coreml', 'webgpu', 'cpu']);
    expect(providerCandidates('webgpu')).toEqual(['webgpu', 'cpu']);
    expect(physicalCores()).toBeGreaterThanOrEqual(1);
  });
});

describe('model cache', () => {
  const config: HieraConfig = { ...structuredClone(HIERA_PRESETS.hiera_t!), embed_dim: 8 };

  it('builds once, then serves the cached file; the key follows size, outChannels and weights', async () => {
    const first = await buildModel('trunk', config, new RandomWeights(5), { height: 64, width: 64, cache: tmp });
    expect(first.cached).toBe(false);
    expect(typeof first.source).toBe('string');
    const again = await buildModel('trunk', config, new RandomWeights(5), { height: 64, width: 64, cache: tmp });
    expect(again.cached).toBe(true);
    expect(again.source).toBe(first.source);
    expect(again.flops).toBe(first.flops);
    const client = await SessionClient.create(again.source, { device: 'cpu' });
    const out = await client.run({ input: { dims: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64) } });
    expect(out.feat3!.dims).toEqual([1, 64, 2, 2]);
    await client.dispose();
    const k = (o: object, w = 'a'): string => cacheKey('trunk', config, { height: 64, width: 64, ...o }, w);
    expect(new Set([k({}), k({ height: 96 }), k({ outChannels: 3 }), k({}, 'b')]).size).toBe(4);
  });

  it('returns the bytes when the cache is off', async () => {
    const m = await buildModel('trunk', config, new RandomWeights(5), { height: 64, width: 64, cache: false });
    expect(m.source).toBeInstanceOf(Uint8Array);
  });
});

describe('model cache pruning', () => {
  it('drops the least recently used models beyond the limit, never the one just written', async () => {
    const { pruneCache } = await import('../../../main/core/model/engine.ts');
    const { writeFileSync, utimesSync, existsSync, mkdirSync } = await import('node:fs');
    const dir = join(tmp, 'prune');
    mkdirSync(dir, { recursive: true });
    const files = ['a', 'b', 'c'].map((n, i) => {
      const f = join(dir, `${n}.onnx`);
      writeFileSync(f, new Uint8Array(1000));
      writeFileSync(`${f}.json`, '{}');
      utimesSync(f, new Date(1000 * (i + 1)), new Date(1000 * (i + 1)));
      return f;
    });
    // 3000 bytes, limit 1500: `keep` protects a (the oldest), so b and then c go until it fits
    expect(await pruneCache(dir, files[0]!, 1500)).toEqual([files[1], files[2]]);
    expect(existsSync(files[0]!)).toBe(true);
    expect(existsSync(`${files[1]}.json`)).toBe(false);
  });
});

describe('transfers', () => {
  it('copies a pooled Buffer that refuses transfer instead of failing', async () => {
    const client = await SessionClient.create(doubler(), { device: 'cpu', threads: 1 });
    try {
      const pooled = Buffer.from([0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64]); // 1, 2, 3 as float32 in Node's shared pool
      const data = new Float32Array(pooled.buffer, pooled.byteOffset, 3);
      const out = await client.run({ x: { dims: [1, 3], data } });
      expect([...out.y!.data]).toEqual([2, 4, 6]);
    } finally {
      await client.dispose();
    }
  });
});
