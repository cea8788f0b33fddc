/**
 * The app's long jobs as the Electron main process runs them: the api service with the real
 * ports (reader, bundled model, trainer), jobs in worker threads, events through the
 * MessagePort wiring. This test process plays the main process, so an event-loop-lag probe here
 * measures what the UI would feel.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../../main/core/api.ts';
import { eventValidator } from '../../../main/core/api.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { apiClient, apiDispatcher, serveApi } from '../../../main/core/rpc/api-channel.ts';
import { nodePortTransport } from '../../../main/core/rpc/ports.ts';

const phantoms = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const case001 = join(phantoms, 'BraTS20_Training_001');
const case004 = join(phantoms, 'BraTS20_Training_004');
const dir = mkdtempSync(join(tmpdir(), 'sam2unet-jobs-'));

/** Largest gap between timer ticks beyond their 5 ms period: the longest the loop was blocked. */
function lagProbe() {
  let worst = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 5);
    last = now;
  }, 5);
  return {
    stop: () => {
      clearInterval(timer);
      return worst;
    },
  };
}

function collector(service: WorkstationService) {
  const events: ApiEvent[] = [];
  let wake = () => {};
  service.onEvent((event) => {
    // what the renderer would drop as malformed must not be sent
    const problem = eventValidator(event, 'event');
    if (problem) throw new Error(`invalid ${event.type} event: ${problem}`);
    events.push(event);
    wake();
  });
  const until = async (predicate: (e: ApiEvent) => boolean, ms = 240_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = events.find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out; events so far: ${events.map((e) => e.type).join(', ')}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  return { events, until };
}

describe('jobs in worker threads through the service (real model, phantom 001)', () => {
  let service: WorkstationService;
  beforeAll(() => {
    service = new WorkstationService({ mode: 'electron', trainingDir: join(dir, 'training'), resolveExportPath: () => join(dir, 'x') });
  });
  afterAll(async () => {
    await service.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('streams every slice in order through the MessagePort channel while the main loop never stalls over 50 ms', async () => {
    const { studies } = await service.openStudy({ path: case001 });
    const study = studies[0]!;
    const [nx, ny, nz] = study.dims;
    // the page's wiring: the API's channel over a message port, calls and events on the one stream
    const channel = new MessageChannel();
    const disconnect = serveApi(nodePortTransport(channel.port1), service, apiDispatcher(service));
    const { api } = apiClient(nodePortTransport(channel.port2));
    const received: ApiEvent[] = [];
    const finished = new Promise<void>((done) =>
      api.onEvent((event: ApiEvent) => {
        expect(eventValidator(event, 'event')).toBeNull();
        received.push(event);
        if (event.type === 'done' || event.type === 'failed') done();
      }),
    );
    const probe = lagProbe();
    const started = performance.now();
    const { jobId } = await api.segment({ studyId: study.id });
    await finished;
    const worst = probe.stop();
    disconnect();
    channel.port1.close();
    channel.port2.close();
    const failed = received.find((e) => e.type === 'failed');
    expect(failed, failed && 'message' in failed ? failed.message : '').toBeUndefined();
    const slices = received.filter((e): e is Extract<ApiEvent, { type: 'sliceResult' }> => e.type === 'sliceResult');
    // every slice streamed once in order, then the slices 3D post-processing changed, sent again
    expect(slices.slice(0, nz).map((s) => s.index)).toEqual([...Array(nz).keys()]);
    expect(slices.slice(nz).every((s, i, rest) => s.index < nz && rest.findIndex((r) => r.index === s.index) === i)).toBe(true);
    expect(slices.every((s) => s.jobId === jobId && s.mask instanceof Uint8Array && s.mask.length === nx * ny)).toBe(true);
    const done = received.find((e) => e.type === 'done') as Extract<ApiEvent, { type: 'done' }>;
    expect(done.dice?.WT).toBeGreaterThan(0.8);
    console.log(`  ${nz} slices in ${((performance.now() - started) / 1000).toFixed(1)} s; worst event-loop stall ${worst.toFixed(1)} ms; WT Dice ${done.dice?.WT?.toFixed(3)}`);
    expect(worst).toBeLessThan(50);
    // the prediction assembled from the stream is what export writes
    const labels = await service.getLabels({ studyId: study.id, source: 'prediction' });
    expect(labels?.data.some((v) => v !== 0)).toBe(true);
  }, 300_000);

  it('trains in a worker with live events, lists the run and its model, and refuses a second run at once', async () => {
    const { events, until } = collector(service);
    const probe = lagProbe();
    const { jobId } = await service.train({ data: [case001], val: [case004], strategy: 'adapter', steps: 2, batch: 2, name: 'unit-run' });
    await expect(service.train({ data: [case001], strategy: 'adapter', steps: 1 })).rejects.toThrow(/already going/);
    const end = await until((e) => (e.type === 'trainDone' || e.type === 'failed' || e.type === 'cancelled') && e.jobId === jobId);
    const worst = probe.stop();
    expect(end.type, JSON.stringify(end)).toBe('trainDone');
    const start = events.find((e) => e.type === 'trainStart') as Extract<ApiEvent, { type: 'trainStart' }>;
    expect(start).toMatchObject({ run: 'unit-run', totalSteps: 2, resumedFrom: 0 });
    expect(start.trainable).toBeGreaterThan(0);
    const steps = events.filter((e): e is Extract<ApiEvent, { type: 'trainStep' }> => e.type === 'trainStep');
    expect(steps.map((s) => s.step)).toEqual([1, 2]);
    expect(steps.every((s) => Number.isFinite(s.loss) && s.loss > 0)).toBe(true);
    const validation = events.find((e) => e.type === 'trainValidation') as Extract<ApiEvent, { type: 'trainValidation' }>;
    expect(Object.keys(validation.dice).sort()).toEqual(['ET', 'TC', 'WT']);
    const { model } = end as Extract<ApiEvent, { type: 'trainDone' }>;
    expect(existsSync(model.id)).toBe(true);
    expect((await service.listModels()).find((m) => m.id === model.id)).toMatchObject({ kind: 'trained', name: 'unit-run' });
    expect(await service.listTrainingRuns()).toEqual([expect.objectContaining({ name: 'unit-run', step: 2, model: model.id })]);
    console.log(`  2 train steps; worst event-loop stall ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(50);
    await expect(service.train({ data: [case001], strategy: 'adapter', steps: 2, name: 'unit-run' })).rejects.toThrow(/exists; resume it/);
    await expect(service.train({ data: [case001], strategy: 'adapter', steps: 2, name: '../escape' })).rejects.toThrow(/letters, digits/);
  }, 300_000);

  it('cancels a training run after its first step, keeps its checkpoint, and resumes it', async () => {
    const { events, until } = collector(service);
    const first = await service.train({ data: [case001], strategy: 'lora', steps: 3, batch: 2, name: 'cancel-run', loraRank: 2 });
    await until((e) => e.type === 'trainStep' && e.jobId === first.jobId);
    await service.cancel({ jobId: first.jobId });
    const end = await until((e) => (e.type === 'cancelled' || e.type === 'trainDone' || e.type === 'failed') && e.jobId === first.jobId);
    expect(end.type).toBe('cancelled');
    const run = (await service.listTrainingRuns()).find((r) => r.name === 'cancel-run');
    expect(run?.step).toBeGreaterThanOrEqual(1);
    expect(run?.model).toBeUndefined();
    const resumed = await service.train({ data: [case001], strategy: 'lora', steps: 3, batch: 2, name: 'cancel-run', loraRank: 2, resume: true });
    const start = (await until((e) => e.type === 'trainStart' && e.jobId === resumed.jobId)) as Extract<ApiEvent, { type: 'trainStart' }>;
    expect(start.resumedFrom).toBe(run!.step);
    const done = await until((e) => (e.type === 'trainDone' || e.type === 'failed') && e.jobId === resumed.jobId);
    expect(done.type, JSON.stringify(done)).toBe('trainDone');
    expect(events.filter((e) => e.type === 'trainStep' && e.jobId === resumed.jobId).map((e) => (e as { step: number }).step)).toEqual(
      [1, 2, 3].filter((s) => s > run!.step),
    );
  }, 300_000);
});
