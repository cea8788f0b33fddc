import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, UserError } from '../../../main/core/errors.ts';
import type { Study } from '../../../main/core/io/study.ts';
import { Volume, type VoxelArray } from '../../../main/core/io/volume.ts';
import { batchPlan, focusRank, segmentStudy, SliceFocus, type SliceResult } from '../../../main/core/jobs/segment.ts';
import type { SliceModel } from '../../../main/core/jobs/slice-model.ts';
import { thresholdModel } from './tiny-model.ts';

const [NX, NY, NZ] = [48, 40, 155];
const FIRST_BRAIN = 10;
const LAST_BRAIN = 144;

function volume(data: VoxelArray, id: string): Volume {
  return new Volume({
    geometry: { dims: [NX, NY, NZ], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    meta: { id, description: id, modality: 'MR', sources: [] },
  });
}

/**
 * A 155-slice study: slices outside FIRST_BRAIN…LAST_BRAIN are all zero; inside, an ellipse of
 * "brain" at 100 and, in slices 60…89, a tumour: edema 200, core ring 250, enhancing centre 300.
 * The enhancing centre is over 0.5 % of the non-zero voxels and the brain over 0.5 %, so the
 * intensity scaling maps them to s = 0, 0.5, 0.75, 1, and the threshold model (0.25, 0.6,
 * 0.9) reproduces the ground truth exactly when the model size equals the slice size.
 */
function phantomStudy(): Study {
  const flair = new Int16Array(NX * NY * NZ);
  const seg = new Uint8Array(NX * NY * NZ);
  for (let z = FIRST_BRAIN; z <= LAST_BRAIN; z++) {
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        const i = (z * NY + y) * NX + x;
        if (((x - 24) / 20) ** 2 + ((y - 20) / 16) ** 2 > 1) continue;
        flair[i] = 100;
        if (z < 60 || z >= 90) continue;
        const r = Math.hypot(x - 20, y - 18, (z - 75) / 3);
        if (r < 5) [flair[i], seg[i]] = [300, 4];
        else if (r < 7) [flair[i], seg[i]] = [250, 1];
        else if (r < 10) [flair[i], seg[i]] = [200, 2];
      }
    }
  }
  // the other channels carry the same anatomy; the model only reads FLAIR
  const other = Int16Array.from(flair, (v) => (v ? v / 2 + 1 : 0));
  return {
    name: 'phantom',
    kind: 'brats',
    source: '/phantom',
    sequences: { t1: volume(other, 't1'), t1ce: volume(other, 't1ce'), t2: volume(other, 't2'), flair: volume(flair, 'flair') },
    seg: volume(seg, 'seg'),
  };
}

/** Logs when each model run starts and when its result is back on this thread. */
function instrumented(model: SliceModel, log: string[], delayMs = 0): SliceModel {
  let runs = 0;
  return {
    inputSize: model.inputSize,
    outChannels: model.outChannels,
    provider: model.provider,
    async run(batch, n) {
      const id = runs++;
      log.push(`run${id}:start:${n}`);
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const out = await model.run(batch, n);
      log.push(`run${id}:done`);
      return out;
    },
    dispose: () => model.dispose(),
  };
}

let study: Study;
// each model is a worker thread: start them all at once
let exact: SliceModel;
let noEt: SliceModel;
let resized: SliceModel;
let binary: SliceModel;
beforeAll(async () => {
  study = phantomStudy();
  [exact, noEt, resized, binary] = await Promise.all([
    thresholdModel([0.25, 0.6, 0.9], [NY, NX]),
    // ET threshold above every voxel: ET is never predicted, TC's centre is labelled 1
    thresholdModel([0.25, 0.6, 1.5], [NY, NX]),
    thresholdModel([0.25, 0.6, 0.9], [64, 64]),
    thresholdModel([0.25], [NY, NX]),
  ]);
});
afterAll(async () => {
  await Promise.all([exact, noEt, resized, binary].map((m) => m?.dispose()));
});

describe('batchPlan', () => {
  it('starts with one slice and doubles up to the cap', () => {
    expect(batchPlan(20, 4)).toEqual([1, 2, 4, 4, 4, 4, 1]);
    expect(batchPlan(2, 8)).toEqual([1, 1]);
    expect(batchPlan(0, 4)).toEqual([]);
    expect(batchPlan(5, 1)).toEqual([1, 1, 1, 1, 1]);
  });
});

describe('segmentStudy', () => {
  it('streams all 155 slices in order, skips empty ones, assembles the ground truth exactly', async () => {
    const log: string[] = [];
    const results: SliceResult[] = [];
    const starts: unknown[] = [];
    const model = instrumented(exact, log);
    const { labels, summary } = await segmentStudy(study, model, { batchSize: 8 }, {
      start: (info) => starts.push(info),
      slice: (r) => {
        log.push(`emit${r.index}`);
        results.push(r);
      },
    });
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: NZ }, (_, k) => k));
    expect(starts).toEqual([{ slices: NZ, emptySlices: NZ - (LAST_BRAIN - FIRST_BRAIN + 1), provider: 'cpu', regions: 'brats' }]);
    for (const r of results) {
      const inBrain = r.index >= FIRST_BRAIN && r.index <= LAST_BRAIN;
      expect(r.empty, `slice ${r.index}`).toBe(inBrain ? undefined : true);
      expect(r.mask.length).toBe(NX * NY);
      expect(r.mask.buffer.byteLength).toBe(NX * NY);
      expect(r.ms).toBeGreaterThanOrEqual(0);
    }
    // streaming: slice 10 (the first computed) is out before the run holding slice 11 is back
    expect(log.indexOf('emit10')).toBeLessThan(log.indexOf('run1:done'));
    expect(log.indexOf('run1:start:2')).toBeLessThan(log.indexOf('emit10'));
    expect(log.filter((e) => e.startsWith('run') && e.endsWith('done')).length).toBe(summary.batches.length);
    expect(summary.batches.slice(0, 5)).toEqual([1, 2, 4, 8, 8]);
    expect(summary.batches.reduce((a, b) => a + b, 0)).toBe(LAST_BRAIN - FIRST_BRAIN + 1);

    expect(Buffer.from(labels.data).equals(Buffer.from(study.seg!.data as Uint8Array))).toBe(true);
    expect(labels.dims).toEqual([NX, NY, NZ]);
    expect(labels.geometry).toBe(study.sequences.flair!.geometry);
    const perfect = { dice: 1, iou: 1, fp: 0, fn: 0 };
    expect(summary.metrics).toMatchObject({ WT: { ...perfect, hd95: 0 }, TC: perfect, ET: perfect });
    expect(summary.metrics!.ET!.tp).toBeGreaterThan(0);
    expect(summary.sliceSummary!.WT).toMatchObject({ meanSliceDice: 1, mDiceSlices: 30, slices: NZ });
    const tumourSlice = results[75]!;
    expect(tumourSlice.regions).toMatchObject({ WT: perfect, TC: perfect, ET: perfect });
    expect(tumourSlice.regions!.ET!.tp).toBeGreaterThan(0);
    // a slice without tumour in either map: the metrics module's empty rule (1), nothing counted
    expect(results[20]!.regions).toMatchObject({ WT: { dice: 1, tp: 0, fp: 0, fn: 0 }, ET: { dice: 1, tp: 0 } });
    expect(summary).toMatchObject({ case: 'phantom', slices: NZ, emptySlices: 20, provider: 'cpu', regions: 'brats' });
  });

  it('scores per slice against ground truth when the prediction differs', async () => {
    const results = new Map<number, SliceResult>();
    const { summary } = await segmentStudy(study, noEt, {}, { slice: (r) => results.set(r.index, r) });
    const seg = study.seg!.sliceView(75);
    let et = 0;
    for (let i = 0; i < seg.length; i++) if (seg[i] === 4) et++;
    expect(et).toBeGreaterThan(0);
    expect(results.get(75)!.regions).toMatchObject({ WT: { dice: 1, iou: 1 }, TC: { dice: 1, iou: 1 }, ET: { dice: 0, iou: 0, tp: 0, fn: et } });
    expect(summary.metrics!.ET).toMatchObject({ dice: 0, iou: 0, tp: 0, fp: 0 });
  });

  it('gives the same labels with any batch size and a model size other than the slice size', async () => {
    const one = await segmentStudy(study, resized, { batchSize: 1 });
    const many = await segmentStudy(study, resized, { batchSize: 16 });
    expect(one.summary.batches.every((n) => n === 1)).toBe(true);
    expect(Buffer.from(many.labels.data).equals(Buffer.from(one.labels.data))).toBe(true);
    // resizing there and back moves region borders by at most a voxel
    for (const region of ['WT', 'TC', 'ET']) expect(one.summary.metrics![region]!.dice!).toBeGreaterThan(0.85);
  });

  it('binary model: 0/1 labels scored against the whole tumour; ground truth can be turned off', async () => {
    const { labels, summary } = await segmentStudy(study, binary, {});
    expect(summary.regions).toBe('binary');
    expect(Object.keys(summary.metrics!)).toEqual(['foreground']);
    expect(summary.metrics!.foreground).toMatchObject({ dice: 1, iou: 1, fp: 0, fn: 0 });
    expect(new Set(labels.data)).toEqual(new Set([0, 1]));
    const noTruth: SliceResult[] = [];
    const without = await segmentStudy(study, binary, { groundTruth: null }, { slice: (r) => noTruth.push(r) });
    expect(without.summary.metrics).toBeNull();
    expect(noTruth.every((r) => r.regions === null)).toBe(true);
  });

  it('cancels from a slice callback: no further slice, CancelledError', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const job = segmentStudy(study, exact, { signal: controller.signal }, {
      slice: (r) => {
        seen.push(r.index);
        if (r.index === FIRST_BRAIN + 1) controller.abort();
      },
    });
    await expect(job).rejects.toBeInstanceOf(CancelledError);
    expect(seen).toEqual(Array.from({ length: FIRST_BRAIN + 2 }, (_, k) => k));
  });

  it('cancels while the model runs without waiting for it', async () => {
    const controller = new AbortController();
    const log: string[] = [];
    const slow = instrumented(exact, log, 400);
    const t0 = performance.now();
    setTimeout(() => controller.abort(), 50);
    await expect(segmentStudy(study, slow, { signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(performance.now() - t0).toBeLessThan(350);
    expect(log).toEqual(['run0:start:1']);
  });

  it('an already aborted signal never starts the model', async () => {
    const log: string[] = [];
    await expect(segmentStudy(study, instrumented(exact, log), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(log).toEqual([]);
  });

  it('fails with the error of the model or of a listener, leaving no batch unobserved', async () => {
    let calls = 0;
    const failing: SliceModel = {
      ...exact,
      inputSize: exact.inputSize,
      outChannels: 3,
      provider: 'cpu',
      run: (batch, n) => (calls++ === 1 ? Promise.reject(new Error('worker crashed')) : exact.run(batch, n)),
      dispose: () => {},
    };
    await expect(segmentStudy(study, failing, { batchSize: 2 })).rejects.toThrow('worker crashed');
    expect(calls).toBe(2);
    const throwing = segmentStudy(study, exact, { batchSize: 2 }, {
      slice: (r) => {
        if (r.index === FIRST_BRAIN) throw new Error('listener failed');
      },
    });
    await expect(throwing).rejects.toThrow('listener failed');
  });

  it('refuses models and ground truth that do not fit', async () => {
    const two: SliceModel = { inputSize: [NY, NX], outChannels: 2, provider: 'cpu', run: async () => new Float32Array(0), dispose: () => {} };
    await expect(segmentStudy(study, two)).rejects.toThrow(/2 output channels/);
    await expect(segmentStudy(study, exact, { regions: 'binary' })).rejects.toThrow(/3 output channels; binary regions need 1/);
    const small = new Volume({
      geometry: { dims: [NX, NY, 3], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
      data: new Uint8Array(NX * NY * 3),
      meta: { id: 'small_seg', description: '', modality: 'SEG', sources: [] },
    });
    await expect(segmentStudy(study, exact, { groundTruth: small })).rejects.toBeInstanceOf(UserError);
    const wrongShape: SliceModel = { ...exact, inputSize: exact.inputSize, outChannels: 3, provider: 'cpu', run: async () => new Float32Array(5), dispose: () => {} };
    await expect(segmentStudy(study, wrongShape)).rejects.toThrow(/values for 3×/);
  });

  it('works outward from the slice in focus: k, k+1, k−1, k+2, …; the same labels as in index order', async () => {
    const order: number[] = [];
    const log: string[] = [];
    const { labels, summary } = await segmentStudy(study, instrumented(exact, log), { batchSize: 4, focus: new SliceFocus(75) }, { slice: (r) => order.push(r.index) });
    expect(order[0]).toBe(75);
    // the first model run holds the slice in focus alone
    expect(log[0]).toBe('run0:start:1');
    expect(new Set(order).size).toBe(NZ);
    // within each batch the slices come nearest first, and batches come in order of distance
    const ranks = order.map((k) => focusRank(k, 75));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(order.slice(0, 5)).toEqual([75, 76, 74, 77, 73]);
    // slices outside the head come when their turn comes, without a model run
    expect(order.indexOf(FIRST_BRAIN - 1)).toBeGreaterThan(order.indexOf(FIRST_BRAIN));
    const indexOrder = await segmentStudy(study, exact, { batchSize: 4 });
    expect(Buffer.from(labels.data).equals(Buffer.from(indexOrder.labels.data))).toBe(true);
    expect(summary.perSlice.map((e) => e.slice)).toEqual(indexOrder.summary.perSlice.map((e) => e.slice));
    expect(summary.firstSliceMs).toBeGreaterThan(0);
    expect(summary.firstSliceMs).toBeLessThanOrEqual(summary.ms);
  });

  it('follows the focus when it moves: the slices nearest to the new one come next', async () => {
    const focus = new SliceFocus(100);
    const computed: number[] = [];
    let all = 0;
    let movedAt = -1;
    await segmentStudy(study, instrumented(exact, [], 5), { batchSize: 1, focus }, {
      slice: (r) => {
        all++;
        if (r.empty) return;
        computed.push(r.index);
        if (computed.length === 3) {
          focus.index = 30;
          movedAt = computed.length;
        }
      },
    });
    expect(computed.slice(0, 3)).toEqual([100, 101, 99]);
    // one batch was prepared before the move (the pipeline runs one ahead), then 30 and around it
    expect(computed[movedAt]).toBe(102);
    expect(computed.slice(movedAt + 1, movedAt + 6)).toEqual([30, 31, 29, 32, 28]);
    expect(all).toBe(NZ);
  });

  it('a focus beyond the last slice counts as the last; a negative or fractional one is refused', () => {
    expect(() => new SliceFocus(-1)).toThrow(UserError);
    expect(() => new SliceFocus(2.5)).toThrow(/index ≥ 0/);
    const focus = new SliceFocus(3);
    expect(() => (focus.index = -2)).toThrow(UserError);
    expect(focus.index).toBe(3);
    expect([0, 1, 2, 3, 4, 5, 6].map((k) => focusRank(k, 3))).toEqual([6, 4, 2, 0, 1, 3, 5]);
    expect(focusRank(7, undefined)).toBe(7);
  });
});
