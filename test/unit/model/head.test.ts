/**
 * Issue 19: slices outside the head are not run (preprocess.ts outsideHead), and the test never
 * skips a slice that holds tumour in the ground truth: the four shared phantoms, generated broad
 * phantoms (`sam2unet phantom --variety broad`: 1–100 ml anywhere, 1–3 foci), and a shared phantom
 * given the noisy air of an unstripped scan, where "all zero" never happens.
 */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openPath } from '../../../main/core/io/open.ts';
import type { Study } from '../../../main/core/io/study.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { headAreaMm2, inputChannels, isEmptySlice, MIN_HEAD_AREA_MM2, outsideHead, volumeIntensityScaling } from '../../../main/core/model/preprocess.ts';
import { generatePhantomCase } from '../../../main/core/phantom/index.ts';
import { gaussian, mulberry32 } from '../../../main/core/util/random.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const SHARED = [1, 2, 3, 4].map((i) => join(phantoms, `BraTS20_Training_00${i}`));
/** generated cases: enough to cover lesions near the top and bottom of the brain, few enough for CI */
const BROAD_CASES = 4;

interface Survey {
  skipped: number[];
  tumourSlices: number[];
  /** the smallest head area (mm²) among slices with tumour */
  smallestTumourHead: number;
}

function survey(study: Study): Survey {
  const channels = inputChannels(study);
  const seg = study.seg!;
  const nz = seg.dims[2];
  const skipped: number[] = [];
  const tumourSlices: number[] = [];
  let smallestTumourHead = Infinity;
  for (let k = 0; k < nz; k++) {
    if (outsideHead(channels, k)) skipped.push(k);
    if (seg.sliceView(k).some((v) => v !== 0)) {
      tumourSlices.push(k);
      smallestTumourHead = Math.min(smallestTumourHead, headAreaMm2(channels, k));
    }
  }
  return { skipped, tumourSlices, smallestTumourHead };
}

function expectNoTumourSkipped(name: string, s: Survey): void {
  const lost = s.tumourSlices.filter((k) => s.skipped.includes(k));
  expect(lost, `${name}: slices with tumour that would be skipped`).toEqual([]);
  expect(s.tumourSlices.length).toBeGreaterThan(0);
}

/** The study with Rician noise (σ = 2 % of each sequence's 99.5th percentile) where it was zero: the air around an unstripped head. */
function withNoisyAir(study: Study, seed: number): Study {
  const gauss = gaussian(mulberry32(seed));
  const sequences: Record<string, Volume> = {};
  for (const [name, volume] of Object.entries(study.sequences)) {
    const sigma = 0.02 * volumeIntensityScaling(volume).high;
    const data = Float32Array.from({ length: volume.data.length }, (_, i) => {
      const v = volume.value(i);
      return v !== 0 ? v : Math.hypot(sigma * gauss(), sigma * gauss());
    });
    sequences[name] = volume.withData(data, { id: `${volume.meta.id}_noisy` });
  }
  return { ...study, name: `${study.name}_noisy`, sequences };
}

describe('outsideHead', () => {
  it.each(SHARED)('never skips a slice with tumour, and skips every all-zero slice: %s', async (path) => {
    const study = (await openPath(path)).studies[0]!;
    const s = survey(study);
    expectNoTumourSkipped(study.name, s);
    const channels = inputChannels(study);
    const allZero = Array.from({ length: study.seg!.dims[2] }, (_, k) => k).filter((k) => isEmptySlice(channels, k));
    for (const k of allZero) expect(s.skipped).toContain(k);
    console.log(`${study.name}: ${s.skipped.length} slices skipped (${allZero.length} all zero); smallest head section with tumour ${s.smallestTumourHead.toFixed(0)} mm² (limit ${MIN_HEAD_AREA_MM2})`);
  });

  it(`never skips a slice with tumour in ${BROAD_CASES} generated broad-variety phantoms`, () => {
    for (let index = 1; index <= BROAD_CASES; index++) {
      const phantom = generatePhantomCase(19, index, { variety: 'broad' });
      const study: Study = { name: phantom.name, kind: 'brats', source: phantom.name, sequences: phantom.sequences, seg: phantom.seg };
      const s = survey(study);
      expectNoTumourSkipped(phantom.name, s);
      console.log(`${phantom.name} (broad): ${s.skipped.length} slices skipped, ${s.tumourSlices.length} with tumour; smallest head section with tumour ${s.smallestTumourHead.toFixed(0)} mm²`);
    }
  });

  it('skips slices of noisy air around an unstripped head, which are never all zero', async () => {
    const clean = (await openPath(SHARED[0]!)).studies[0]!;
    const noisy = withNoisyAir(clean, 7);
    const channels = inputChannels(noisy);
    const s = survey(noisy);
    expectNoTumourSkipped(noisy.name, s);
    const cleanChannels = inputChannels(clean);
    const wasEmpty = Array.from({ length: 155 }, (_, k) => k).filter((k) => isEmptySlice(cleanChannels, k));
    expect(wasEmpty.length).toBeGreaterThan(5);
    for (const k of wasEmpty) {
      expect(isEmptySlice(channels, k), `slice ${k} holds noise now`).toBe(false);
      expect(s.skipped, `slice ${k}: noise only`).toContain(k);
    }
  });
});
