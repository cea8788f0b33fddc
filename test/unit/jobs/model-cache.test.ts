/**
 * The segmentation worker's model cache, run in this process: models stay loaded between jobs,
 * at most two at a time (least recently used go first), and a checkpoint rewritten in place is
 * loaded afresh.
 */
import { copyFileSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runSegmentJob } from '../../../main/core/jobs/worker-jobs.ts';
import { loadedModelCount, releaseModels } from '../../../main/core/jobs/model-cache.ts';
import { studyToData } from '../../../main/core/jobs/kinds.ts';
import { tinyStudy } from '../app/fakes.ts';

const golden = resolve(import.meta.dirname, '../../../../shared/golden/sam2unet_mini');
const dir = mkdtempSync(join(tmpdir(), 'sam2unet-model-cache-'));
afterAll(async () => {
  await releaseModels();
  rmSync(dir, { recursive: true, force: true });
});

const checkpoints = ['a', 'b', 'c'].map((name) => {
  const path = join(dir, `${name}.pth`);
  copyFileSync(join(golden, 'sam2unet.pth'), path);
  return path;
});

async function segment(checkpoint: string): Promise<string[]> {
  const messages: string[] = [];
  const outcome = await runSegmentJob(
    // the tiny study has FLAIR only: it feeds all three channels
    { study: studyToData(tinyStudy()), checkpoint, device: 'cpu', channels: ['flair'] },
    (event) => {
      if (event.kind === 'progress') messages.push(event.message);
    },
    new AbortController().signal,
  );
  expect(outcome.run.checkpoint).toBe(checkpoint);
  return messages;
}

const loaded = (messages: string[]) => messages.some((m) => m.startsWith('loading the model'));

describe('segmentation worker model cache', () => {
  it('reuses a loaded model, keeps at most two, and reloads a checkpoint rewritten in place', async () => {
    expect(loaded(await segment(checkpoints[0]!))).toBe(true);
    expect(loaded(await segment(checkpoints[0]!))).toBe(false);
    expect(loaded(await segment(checkpoints[1]!))).toBe(true);
    expect(loadedModelCount()).toBe(2);
    // a third model evicts the least recently used (a)
    expect(loaded(await segment(checkpoints[2]!))).toBe(true);
    expect(loadedModelCount()).toBe(2);
    expect(loaded(await segment(checkpoints[1]!))).toBe(false);
    expect(loaded(await segment(checkpoints[0]!))).toBe(true);
    // rewritten in place: a new modification time, a fresh load
    const later = new Date(Date.now() + 60_000);
    utimesSync(checkpoints[0]!, later, later);
    expect(loaded(await segment(checkpoints[0]!))).toBe(true);
    expect(loadedModelCount()).toBe(2);
  }, 240_000);
});
