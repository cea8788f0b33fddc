/**
 * Issue 4's resume guarantee: a training run killed with SIGKILL and resumed from its last
 * checkpoint ends with the same weights as a run that never stopped.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../../main/core/model/safetensors.ts';
import { train, type TrainOptions } from '../../../main/core/train/trainer.ts';
import { parseHieraConfig } from '../../../main/core/model/config.ts';

const phantom = resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001');
const tinyConfig = {
  embed_dim: 8,
  num_heads: 1,
  stages: [1, 1, 1, 1],
  global_att_blocks: [2],
  window_pos_embed_bkg_spatial_size: [4, 4],
  window_spec: [4, 4, 4, 2],
};

function options(out: string, resume: boolean): TrainOptions {
  return {
    data: [phantom],
    init: { fresh: parseHieraConfig(tinyConfig) },
    out,
    strategy: 'full',
    steps: 6,
    batch: 2,
    lr: 1e-3,
    weightDecay: 5e-4,
    size: [64, 64],
    regions: 'brats',
    seed: 3,
    emptyRatio: 0.25,
    checkpointEvery: 2,
    loss: 'official',
    resume,
    threads: 1,
  };
}

const cliArgs = (out: string): string[] => [
  'bin/sam2unet.mjs', 'train', '--data', phantom, '--config', JSON.stringify(tinyConfig), '--out', out, '--strategy', 'full',
  '--steps', '6', '--batch', '2', '--size', '64', '--seed', '3', '--checkpoint-every', '2', '--threads', '1', '--resume',
];

describe('training resume', () => {
  it('a run killed with SIGKILL after a checkpoint and resumed ends with the same weights (1e-6)', async () => {
    const base = mkdtempSync(join(tmpdir(), 'sam2unet-resume-'));
    const straight = join(base, 'straight');
    const killed = join(base, 'killed');
    await train(options(straight, false));

    // the CLI in a child process, killed as soon as the step-4 checkpoint is committed
    const child = spawn(process.execPath, cliArgs(killed), { stdio: 'ignore' });
    const state = join(killed, 'checkpoints', 'state.json');
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    let killedAt = -1;
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      if (existsSync(state)) {
        const step = (JSON.parse(readFileSync(state, 'utf8')) as { step: number }).step;
        if (step >= 4) {
          child.kill('SIGKILL');
          killedAt = step;
          break;
        }
      }
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await exited;
    expect(killedAt, 'the child was killed after a checkpoint, before finishing').toBeGreaterThanOrEqual(4);
    expect(existsSync(join(killed, 'model.safetensors'))).toBe(false);

    const resumed = await train(options(killed, true));
    expect(resumed.steps).toBe(6);
    const a = await readSafetensors(join(straight, 'model.safetensors'));
    const b = await readSafetensors(join(killed, 'model.safetensors'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    let worst = 0;
    for (const [key, t] of a) {
      const u = b.get(key)!.data;
      for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i]! - u[i]!));
    }
    console.log(`  killed at step ${killedAt}; max |Δweight| after resuming: ${worst}`);
    expect(worst).toBeLessThanOrEqual(1e-6);
  }, 600_000);
});
