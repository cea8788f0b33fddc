/**
 * `sam2unet device-check`'s provider survey (onnx/devices.ts): the CPU always loads, every provider
 * the app knows is reported, one that does not load says why. The full check (hiera_l figures,
 * a train step, a phantom) takes minutes and is not part of the suite: `npm run device-check`.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { plainOrtError, probeProvider, providerCandidates, providerObstacles } from '../../../main/core/onnx/devices.ts';

describe('device survey', () => {
  it('lists the CPU, CUDA, DirectML, CoreML and WebGPU, with what the installed binding ships', async () => {
    const candidates = await providerCandidates();
    const names = candidates.map((c) => c.name);
    for (const name of ['cpu', 'cuda', 'dml', 'coreml', 'webgpu']) expect(names).toContain(name);
    expect(candidates.find((c) => c.name === 'cpu')).toMatchObject({ bundled: true, usedByApp: true });
  });

  it('runs a one-node model on the CPU; a provider of another platform does not load, and says so', async () => {
    expect(await probeProvider('cpu')).toMatchObject({ loads: true });
    const foreign = process.platform === 'darwin' ? 'dml' : 'coreml';
    const result = await probeProvider(foreign);
    expect(result.loads).toBe(false);
    expect(result.error).toMatch(/backend not found/);
    expect(providerObstacles(foreign).join(' ')).toMatch(/exists only on (Windows|macOS)/);
  });

  it('strips the source location ONNX Runtime puts in front of its messages', () => {
    expect(plainOrtError('/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::f()::<lambda()> status == Success was false. Failed to get a WebGPU adapter: No supported adapters\nmore')).toBe('Failed to get a WebGPU adapter: No supported adapters');
    expect(plainOrtError('/onnxruntime_src/x.cc:1 Failed to load')).toBe('Failed to load');
  });

  it('the command answers a probe as one JSON line and refuses an unknown provider', async () => {
    let out = '';
    let err = '';
    const io = { stdout: (t: string) => void (out += t), stderr: (t: string) => void (err += t), interactive: false };
    expect(await main(['device-check', '--probe', 'cpu'], io)).toBe(0);
    expect(JSON.parse(out.trim())).toMatchObject({ loads: true });
    expect(await main(['device-check', '--probe', 'quantum'], io)).toBe(2);
    expect(err).toMatch(/unknown provider "quantum"/);
  });

  it('refuses an input size off the input-size rule, naming the flag', async () => {
    let err = '';
    const io = { stdout: () => {}, stderr: (t: string) => void (err += t), interactive: false };
    expect(await main(['device-check', '--cpu-train-size', '48'], io)).toBe(2);
    expect(err).toMatch(/--cpu-train-size must be a multiple of 32 between 32 and 4096, got 48/);
  });
});
