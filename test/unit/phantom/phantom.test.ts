import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readNifti, readNiftiHeader } from '../../../main/core/io/nifti.ts';
import { affineRAS, type Vec3 } from '../../../main/core/io/volume.ts';
import { PHANTOM_SEQUENCES, generatePhantomCase, phantomCaseName, writePhantomCase, type PhantomCase } from '../../../main/core/phantom/index.ts';
import { main } from '../../../main/cli/index.ts';
import { connectedComponents } from '../../../main/core/metrics/components.ts';

const SMALL: Vec3 = [96, 96, 62];
const shared = resolve(process.cwd(), '../shared/data/phantoms');
const tmp = mkdtempSync(join(tmpdir(), 'phantom-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
// broad case (seed 5, index 3) at SMALL, as generated before the focal variety shared its planner
const BROAD_5_3_SEG = '2e2656716d874a36d9f98270899cd15b80d69d8c4c73a99b5e4c5cd1f057349a';
const BROAD_5_3_FLAIR = 'f1bf30db6d3146304f98c0f1d4290b4b16eaed7bb4f4edbd5f87055b0b676ed5';

/** value at percentile p (0…1) of the positive values of an int16 volume (by histogram) */
function percentile(values: ArrayLike<number>, p: number): number {
  const histogram = new Float64Array(32768);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i]! > 0) {
      histogram[values[i]!]!++;
      n++;
    }
  }
  const target = p * n;
  let seen = 0;
  for (let v = 1; v < histogram.length; v++) {
    seen += histogram[v]!;
    if (seen > target) return v;
  }
  return histogram.length - 1;
}

describe('phantom generator', () => {
  let full: PhantomCase;
  let fullCpuSeconds = 0;

  it('generates a full-size case in a few seconds of CPU', () => {
    const before = process.cpuUsage();
    full = generatePhantomCase(7, 1);
    const used = process.cpuUsage(before);
    fullCpuSeconds = (used.user + used.system) / 1e6;
    console.log(`full-size case: ${fullCpuSeconds.toFixed(2)} s CPU`);
    // about 1.7 s on this machine when idle; the bound leaves room for a loaded CI runner
    expect(fullCpuSeconds).toBeLessThan(10);
  });

  it('uses the BraTS grid, affine and types', () => {
    for (const volume of [...Object.values(full.sequences), full.seg]) {
      expect(volume.dims).toEqual([240, 240, 155]);
      expect(volume.geometry.spacing).toEqual([1, 1, 1]);
      expect(affineRAS(volume.geometry)).toEqual([-1, 0, 0, 0, 0, -1, 0, 239, 0, 0, 1, 0, 0, 0, 0, 1]);
    }
    for (const sequence of PHANTOM_SEQUENCES) expect(full.sequences[sequence].dtype).toBe('int16');
    expect(full.seg.dtype).toBe('uint8');
    expect(full.name).toBe('Phantom_001');
    expect(phantomCaseName(42)).toBe('Phantom_042');
  });

  it('has labels in {0,1,2,4}, only inside a skull-stripped brain shared by all sequences', () => {
    const seg = full.seg.data;
    const t1 = full.sequences.t1.data;
    let brain = 0;
    const counts = new Map<number, number>();
    for (let i = 0; i < seg.length; i++) {
      counts.set(seg[i]!, (counts.get(seg[i]!) ?? 0) + 1);
      const inside = t1[i]! > 0;
      if (inside) brain++;
      for (const sequence of PHANTOM_SEQUENCES) {
        if ((full.sequences[sequence].data[i]! > 0) !== inside) throw new Error(`${sequence} brain mask differs from t1 at voxel ${i}`);
      }
      if (seg[i] && !inside) throw new Error(`label ${seg[i]} outside the brain at voxel ${i}`);
    }
    expect([...counts.keys()].every((label) => [0, 1, 2, 4].includes(label))).toBe(true);
    expect(full.info.labelCounts).toEqual({ 0: counts.get(0) ?? 0, 1: counts.get(1) ?? 0, 2: counts.get(2) ?? 0, 4: counts.get(4) ?? 0 });
    // the shared Colin27-based phantoms: 18–23 % of the grid is brain; tumour 74k–129k voxels
    expect(brain / seg.length).toBeGreaterThan(0.13);
    expect(brain / seg.length).toBeLessThan(0.28);
    expect(counts.get(2) ?? 0).toBeGreaterThan(1000);
  });

  it('has the shared phantoms’ contrasts (in units of the 0.5–99.5 percentile range)', () => {
    const seg = full.seg.data;
    const mean = (sequence: keyof PhantomCase['sequences'], label: number) => {
      const data = full.sequences[sequence].data;
      const lo = percentile(data, 0.005);
      const hi = percentile(data, 0.995);
      let sum = 0;
      let n = 0;
      for (let i = 0; i < seg.length; i++) {
        if (seg[i] === label) {
          sum += (data[i]! - lo) / (hi - lo);
          n++;
        }
      }
      return sum / n;
    };
    for (const sequence of PHANTOM_SEQUENCES) {
      const hi = percentile(full.sequences[sequence].data, 0.995);
      // shared phantoms: 99.5 percentiles 335…1927
      expect(hi).toBeGreaterThan(250);
      expect(hi).toBeLessThan(2600);
    }
    // edema (label 2) measured on the shared phantoms: t1 0.30–0.38, t2 0.79–0.86, flair 0.83–0.87
    expect(mean('t1', 2)).toBeGreaterThan(0.2);
    expect(mean('t1', 2)).toBeLessThan(0.5);
    expect(mean('t2', 2)).toBeGreaterThan(0.6);
    expect(mean('flair', 2)).toBeGreaterThan(0.65);
    if (full.info.enhancing) expect(mean('t1ce', 4)).toBeGreaterThan(0.75); // shared: 0.90–1.01
    if (full.info.necrosis) expect(mean('t1', 1)).toBeLessThan(0.3); // shared: 0.07–0.11
  });

  it('is deterministic: same seed → same voxels and byte-identical files; other seeds differ', async () => {
    const a = generatePhantomCase(11, 3, { size: SMALL });
    const b = generatePhantomCase(11, 3, { size: SMALL });
    const c = generatePhantomCase(12, 3, { size: SMALL });
    for (const sequence of PHANTOM_SEQUENCES) {
      expect(sha(new Uint8Array(a.sequences[sequence].data.buffer))).toBe(sha(new Uint8Array(b.sequences[sequence].data.buffer)));
      expect(sha(new Uint8Array(a.sequences[sequence].data.buffer))).not.toBe(sha(new Uint8Array(c.sequences[sequence].data.buffer)));
    }
    expect(sha(a.seg.data as Uint8Array)).toBe(sha(b.seg.data as Uint8Array));
    const filesA = await writePhantomCase(join(tmp, 'a'), a);
    const filesB = await writePhantomCase(join(tmp, 'b'), b);
    expect(filesA.map((f) => f.slice(join(tmp, 'a').length))).toEqual(PHANTOM_SEQUENCES.map((s) => `/Phantom_003/Phantom_003_${s}.nii.gz`).concat('/Phantom_003/Phantom_003_seg.nii.gz'));
    for (let f = 0; f < filesA.length; f++) expect(sha(readFileSync(filesA[f]!))).toBe(sha(readFileSync(filesB[f]!)));
  });

  it('produces ET-absent and necrosis-absent cases with given seeds, and honours forcing', () => {
    // the tumour plan does not depend on the grid size, so small grids show the same mix
    const noEt = generatePhantomCase(1, 1, { size: SMALL });
    expect(noEt.info.enhancing).toBe(false);
    expect(noEt.info.labelCounts[4]).toBe(0);
    expect(noEt.info.labelCounts[1]).toBeGreaterThan(0);
    const noNecrosis = generatePhantomCase(2, 3, { size: SMALL });
    expect(noNecrosis.info.necrosis).toBe(false);
    expect(noNecrosis.info.labelCounts[1]).toBe(0);
    expect(noNecrosis.info.labelCounts[4]).toBeGreaterThan(0);
    const forced = generatePhantomCase(1, 1, { size: SMALL, enhancing: true, necrosis: true });
    expect(forced.info.labelCounts[4]).toBeGreaterThan(0);
    expect(forced.info.labelCounts[1]).toBeGreaterThan(0);
  });

  it('keeps the classic variety by default: one lesion, the calibrated ranges', () => {
    const classic = generatePhantomCase(2, 3, { size: SMALL });
    expect(classic.info).toMatchObject({ variety: 'classic', foci: 1 });
    const explicit = generatePhantomCase(2, 3, { size: SMALL, variety: 'classic' });
    expect(sha(explicit.seg.data as Uint8Array)).toBe(sha(classic.seg.data as Uint8Array));
    expect(() => generatePhantomCase(2, 3, { size: SMALL, variety: 'wild' as never })).toThrow(/variety must be one of classic, broad, focal/);
  });

  it('broad variety: 1–100 ml, several foci, cases without ET or necrosis, anywhere in the brain', () => {
    const cases = Array.from({ length: 12 }, (_, i) => generatePhantomCase(5, i + 1, { size: SMALL, variety: 'broad' }));
    const ml = cases.map((c) => c.info.wholeTumourMl);
    // the planned volume is 1–100 ml; the irregular edge and clipping by the brain move it a little
    for (const v of ml) {
      expect(v).toBeGreaterThan(0.5);
      expect(v).toBeLessThan(150);
    }
    expect(Math.min(...ml)).toBeLessThan(2.5);
    expect(Math.max(...ml)).toBeGreaterThan(40);
    expect(cases.some((c) => !c.info.enhancing && c.info.labelCounts[4] === 0 && c.info.wholeTumourMl < 3)).toBe(true);
    expect(cases.some((c) => c.info.enhancing && !c.info.necrosis && c.info.labelCounts[1] === 0)).toBe(true);
    // separate foci are separate 26-connected components of the ground truth
    // (a satellite of one lesion may be a separate component too)
    const components = (c: (typeof cases)[number]) => connectedComponents(c.seg.data as Uint8Array, c.seg.dims, 26).sizes.filter((n) => n >= 4).length;
    expect(cases.filter((c) => c.info.foci > 1 && components(c) > 1).length).toBeGreaterThan(1);
    // both hemispheres (x is patient left at high indices) and the whole front-to-back extent
    const cx = cases.map((c) => c.info.tumourCentroid[0] / SMALL[0]);
    expect(Math.min(...cx)).toBeLessThan(0.45);
    expect(Math.max(...cx)).toBeGreaterThan(0.55);
    // a non-enhancing core is solid tumour, FLAIR-bright, not fluid-like necrosis (the classic core)
    const meanFlair = (c: PhantomCase, label: number) => {
      const data = c.sequences.flair.data;
      const hi = percentile(data, 0.995);
      let sum = 0;
      let n = 0;
      for (let i = 0; i < data.length; i++) {
        if (c.seg.data[i] !== label) continue;
        sum += data[i]! / hi;
        n++;
      }
      return sum / n;
    };
    const nonEnhancing = cases.find((c) => !c.info.enhancing)!;
    expect(meanFlair(nonEnhancing, 1)).toBeGreaterThan(0.7);
    const classicNonEnhancing = generatePhantomCase(1, 1, { size: SMALL });
    expect(meanFlair(classicNonEnhancing, 1)).toBeLessThan(0.7);
    const determinism = generatePhantomCase(5, 3, { size: SMALL, variety: 'broad' });
    expect(sha(determinism.seg.data as Uint8Array)).toBe(sha(cases[2]!.seg.data as Uint8Array));
  });

  it('focal variety: small tumours high in the cerebrum, on or beside the midline or out on the convexity', () => {
    const cases = Array.from({ length: 10 }, (_, i) => generatePhantomCase(7, i + 1, { size: SMALL, variety: 'focal' }));
    for (const c of cases) {
      expect(c.info.variety).toBe('focal');
      // planned 0.5–10 ml; the irregular edge and clipping by the brain move it a little
      expect(c.info.wholeTumourMl).toBeGreaterThan(0.2);
      expect(c.info.wholeTumourMl).toBeLessThan(15);
      // above the ventricles: canonical z 95–142 of 155 mm, moved a few mm by the pose and warp
      expect(c.info.tumourCentroid[2] / SMALL[2]).toBeGreaterThan(0.55);
    }
    const fromMidline = cases.map((c) => Math.abs(c.info.tumourCentroid[0] / SMALL[0] - 0.5));
    expect(fromMidline.filter((d) => d < 0.06).length).toBeGreaterThan(1);
    expect(fromMidline.filter((d) => d > 0.1).length).toBeGreaterThan(1);
    expect(cases.some((c) => c.info.foci > 1)).toBe(true);
  });

  it('broad cases keep their voxels: the held-out and training sets of models/README.md regenerate unchanged', () => {
    // pinned when the focal variety was added beside broad (both share the lesion planner)
    const broad = generatePhantomCase(5, 3, { size: SMALL, variety: 'broad' });
    expect(sha(broad.seg.data as Uint8Array)).toBe(BROAD_5_3_SEG);
    expect(sha(new Uint8Array(broad.sequences.flair.data.buffer, broad.sequences.flair.data.byteOffset, broad.sequences.flair.data.byteLength))).toBe(BROAD_5_3_FLAIR);
  });

  it('writes NIfTI files whose header matches the shared BraTS-like phantoms', async () => {
    const [t1File, , , , segFile] = await writePhantomCase(join(tmp, 'full'), full);
    const ours = await readNiftiHeader(t1File!);
    const theirs = await readNiftiHeader(join(shared, 'BraTS20_Training_001/BraTS20_Training_001_t1.nii.gz'));
    for (const key of ['dim', 'datatype', 'bitpix', 'srow', 'sformCode'] as const) expect(ours[key], key).toEqual(theirs[key]);
    expect(ours.pixdim.slice(1, 4)).toEqual(theirs.pixdim.slice(1, 4));
    const oursSeg = await readNiftiHeader(segFile!);
    const theirsSeg = await readNiftiHeader(join(shared, 'BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz'));
    expect(oursSeg.datatype).toBe(theirsSeg.datatype);
    const back = (await readNifti(segFile!)).volumes[0]!;
    expect(sha(back.data as Uint8Array)).toBe(sha(full.seg.data as Uint8Array));
  });

  it('runs as `sam2unet phantom` with a JSON summary', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const status = await main(['phantom', '--out', join(tmp, 'cli'), '--cases', '2', '--seed', '3', '--size', '64,64,40', '--json'], {
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
      interactive: false,
    });
    expect(status).toBe(0);
    const summary = JSON.parse(out.join('')) as { cases: { name: string; files: string[] }[] };
    expect(summary.cases.map((c) => c.name)).toEqual(['Phantom_001', 'Phantom_002']);
    expect(summary.cases[1]!.files).toHaveLength(5);
    expect(err.join('')).toContain('[2/2] Phantom_002');
    const bad = await main(['phantom', '--out', join(tmp, 'cli'), '--size', '10,abc'], { stdout: () => {}, stderr: (t) => err.push(t), interactive: false });
    expect(bad).toBe(2);
    expect(err.join('')).toContain('--size expects');
    const badVariety = await main(['phantom', '--out', join(tmp, 'cli'), '--variety', 'wild'], { stdout: () => {}, stderr: (t) => err.push(t), interactive: false });
    expect(badVariety).toBe(2);
    expect(err.join('')).toContain('--variety must be one of classic, broad, focal');
    const broadOut: string[] = [];
    expect(await main(['phantom', '--out', join(tmp, 'broad'), '--seed', '5', '--size', '64,64,40', '--variety', 'broad', '--json'], { stdout: (t) => broadOut.push(t), stderr: () => {}, interactive: false })).toBe(0);
    expect(JSON.parse(broadOut.join('')).cases[0]).toMatchObject({ variety: 'broad', foci: 2 });
  });
});
