/**
 * I/O fuzz: 1,000 seeded mutations (truncations, flipped and random bytes, absurd element
 * lengths, image sizes and NIfTI header fields) of the external DICOM and NIfTI files, the
 * compressed DICOM fixtures, and phantom DICOM slices and series. Each mutated input must either load or be refused with a
 * FileError; anything else thrown, or a case running longer than CASE_LIMIT_MS, fails.
 *
 * Cases run in a worker thread (fixtures/dicom/fuzz-worker.ts) so a hanging case can be
 * terminated by the watchdog here and reported by its number; replay one with
 * `mutate(source, SEED, index)` from fixtures/dicom/fuzz-cases.ts.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDicomFile } from '../../../main/core/io/dicom/index.ts';
import type { FuzzOutcome, FuzzSource } from '../../fixtures/dicom/fuzz-cases.ts';

const SEED = 20261127;
const CASES = 1000;
/** generous: the machine is shared, and a loaded core can stall a 50 ms case for seconds */
const CASE_LIMIT_MS = 5000;

const shared = path.resolve(process.cwd(), '../shared');
const externalDicom = path.join(shared, 'data/external/dicom');
const externalNifti = path.join(shared, 'data/external/nifti');
const phantomDir = path.join(shared, 'data/phantoms/BraTS20_Training_001_flair_dicom');
/** small compressed files made with dcmtk (JPEG lossless, JPEG-LS, RLE): see fixtures/dicom/README.md */
const fixturesDir = fileURLToPath(new URL('../../fixtures/dicom/', import.meta.url));

interface SourceSpec {
  name: string;
  kind: FuzzSource['kind'];
  paths: string[];
}

async function sourceSpecs(): Promise<SourceSpec[]> {
  const dicom = (await readdir(externalDicom)).filter((f) => f.endsWith('.dcm')).sort();
  const phantom = (await readdir(phantomDir)).filter((f) => f.endsWith('.dcm')).sort();
  const nifti = (await readdir(externalNifti)).filter((f) => /\.nii(\.gz)?$/.test(f)).sort();
  const made = (await readdir(fixturesDir)).filter((f) => f.endsWith('.dcm')).sort();
  return [
    ...dicom.map((f) => ({ name: f, kind: 'dicom' as const, paths: [path.join(externalDicom, f)] })),
    ...made.map((f) => ({ name: `fixtures/${f}`, kind: 'dicom' as const, paths: [path.join(fixturesDir, f)] })),
    ...phantom.slice(0, 3).map((f) => ({ name: `phantom/${f}`, kind: 'dicom' as const, paths: [path.join(phantomDir, f)] })),
    { name: 'phantom series (5 files)', kind: 'series' as const, paths: await consecutiveSlices(phantom, 70, 5) },
    ...nifti.map((f) => ({ name: f, kind: 'nifti' as const, paths: [path.join(externalNifti, f)] })),
  ];
}

/** `count` phantom files that are neighbours in z from index `from` on (file names are random). */
async function consecutiveSlices(files: string[], from: number, count: number): Promise<string[]> {
  const withZ = await Promise.all(
    files.map(async (f) => {
      const full = path.join(phantomDir, f);
      return { full, z: (await parseDicomFile(full)).numbers('ImagePositionPatient')![2]! };
    }),
  );
  return withZ.sort((a, b) => a.z - b.z).slice(from, from + count).map((s) => s.full);
}

/** Source of every case: 60 % single DICOM files, 10 % DICOM series, 30 % NIfTI, round-robin within each. */
function casePlan(specs: SourceSpec[]): number[] {
  const byKind = (kind: FuzzSource['kind']) => specs.flatMap((s, i) => (s.kind === kind ? [i] : []));
  const dicom = byKind('dicom');
  const series = byKind('series');
  const nifti = byKind('nifti');
  return Array.from({ length: CASES }, (_, i) => {
    const slot = i % 10;
    const round = Math.floor(i / 10);
    if (slot < 6) return dicom[(round * 6 + slot) % dicom.length]!;
    if (slot === 6) return series[round % series.length]!;
    return nifti[(round * 3 + slot - 7) % nifti.length]!;
  });
}

/** Runs cases from `start` in a worker; resolves with outcomes, or with the index of a case that hung. */
function runWorker(specs: SourceSpec[], plan: number[], start: number, tmpDir: string): Promise<{ outcomes: FuzzOutcome[]; hung?: number }> {
  const bootstrap = fileURLToPath(new URL('../../fixtures/dicom/worker-bootstrap.mjs', import.meta.url));
  const entry = new URL('../../fixtures/dicom/fuzz-worker.ts', import.meta.url).href;
  const worker = new Worker(bootstrap, { workerData: { entry, specs, plan, start, seed: SEED, tmpDir } });
  const outcomes: FuzzOutcome[] = [];
  return new Promise((resolve, reject) => {
    let current = start;
    // the first case also pays for worker start-up and codec initialisation
    let timer = setTimeout(() => hang(), CASE_LIMIT_MS * 5);
    const hang = () => {
      void worker.terminate();
      resolve({ outcomes, hung: current });
    };
    worker.on('message', (message: { type: string; index?: number; outcome?: FuzzOutcome }) => {
      if (message.type === 'start') {
        current = message.index!;
        clearTimeout(timer);
        timer = setTimeout(hang, current === start ? CASE_LIMIT_MS * 5 : CASE_LIMIT_MS);
      } else if (message.type === 'outcome') {
        outcomes.push(message.outcome!);
      } else if (message.type === 'done') {
        clearTimeout(timer);
        void worker.terminate();
        resolve({ outcomes });
      }
    });
    worker.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

let tmpDir: string | undefined;
afterAll(async () => {
  if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
});

describe('I/O fuzz', () => {
  it(`${CASES} mutated DICOM and NIfTI files either load or are refused with a FileError, each within ${CASE_LIMIT_MS} ms`, async () => {
    tmpDir = await mkdtemp(path.join(tmpdir(), 'io-fuzz-'));
    const specs = await sourceSpecs();
    expect(specs.filter((s) => s.kind === 'nifti').length).toBeGreaterThan(0);
    const plan = casePlan(specs);
    const outcomes: FuzzOutcome[] = [];
    const hung: number[] = [];
    let start = 0;
    const began = performance.now();
    while (start < plan.length) {
      const run = await runWorker(specs, plan, start, tmpDir);
      outcomes.push(...run.outcomes);
      if (run.hung === undefined) break;
      hung.push(run.hung);
      start = run.hung + 1;
    }
    const seconds = (performance.now() - began) / 1000;

    const summary = new Map<string, { loaded: number; refused: number }>();
    for (const o of outcomes) {
      const kind = specs[plan[o.index]!]!.kind;
      const entry = summary.get(kind) ?? { loaded: 0, refused: 0 };
      if (o.result === 'loaded') entry.loaded++;
      if (o.result === 'refused') entry.refused++;
      summary.set(kind, entry);
    }
    const slowest = [...outcomes].sort((a, b) => b.ms - a.ms).slice(0, 3);
    console.log(
      `fuzz: ${outcomes.length} cases in ${seconds.toFixed(1)} s; ` +
        [...summary].map(([k, v]) => `${k}: ${v.loaded} loaded, ${v.refused} refused`).join('; ') +
        `; slowest: ${slowest.map((o) => `${o.ms.toFixed(0)} ms (${o.description})`).join(', ')}`,
    );

    const crashes = outcomes.filter((o) => o.result === 'crashed');
    const slow = outcomes.filter((o) => o.ms > CASE_LIMIT_MS);
    const report = [
      ...hung.map((i) => `case ${i} (${specs[plan[i]!]!.name}) hung > ${CASE_LIMIT_MS} ms`),
      ...crashes.map((o) => `${o.description}\n  → ${o.message.split('\n').slice(0, 4).join('\n    ')}`),
      ...slow.map((o) => `${o.description} took ${o.ms.toFixed(0)} ms`),
    ];
    expect(report, report.join('\n')).toEqual([]);
    expect(outcomes.length).toBe(CASES);
    // every refusal names the input it refused
    for (const o of outcomes.filter((x) => x.result === 'refused')) {
      const spec = specs[plan[o.index]!]!;
      const name = spec.kind === 'nifti' ? `case${o.index}.nii` : o.message.includes(`case${o.index}-`) ? `case${o.index}-${path.basename(spec.name)}` : spec.name;
      expect(o.message, o.description).toContain(name);
    }
  });
});
