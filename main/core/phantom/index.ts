import { join } from 'node:path';
import { writeNifti } from '../io/nifti.ts';
import type { Vec3 } from '../io/volume.ts';
import { PHANTOM_SEQUENCES, generatePhantomCase, type PhantomCase, type PhantomInfo, type PhantomOptions } from './generate.ts';

export {
  BRATS_DIMS,
  PHANTOM_SEQUENCES,
  PHANTOM_VARIETIES,
  generatePhantomCase,
  phantomCaseName,
  phantomGeometry,
  type PhantomCase,
  type PhantomInfo,
  type PhantomOptions,
  type PhantomSequence,
  type PhantomVariety,
} from './generate.ts';

/** sform/qform code of the written files: 2 (aligned), as in the BraTS-like shared phantoms */
const XFORM_ALIGNED = 2;

/**
 * Writes one case as `<dir>/<name>/<name>_{t1,t1ce,t2,flair,seg}.nii.gz` (BraTS naming, int16
 * sequences, uint8 labels). Each file is written atomically; gzip output is deterministic, so a
 * case is byte-identical for the same seed.
 */
export async function writePhantomCase(dir: string, phantom: PhantomCase): Promise<string[]> {
  const caseDir = join(dir, phantom.name);
  const files: string[] = [];
  for (const sequence of PHANTOM_SEQUENCES) {
    const file = join(caseDir, `${phantom.name}_${sequence}.nii.gz`);
    await writeNifti(file, phantom.sequences[sequence], { xformCode: XFORM_ALIGNED, description: `phantom ${sequence}` });
    files.push(file);
  }
  const segFile = join(caseDir, `${phantom.name}_seg.nii.gz`);
  await writeNifti(segFile, phantom.seg, { xformCode: XFORM_ALIGNED, description: 'phantom ground truth' });
  files.push(segFile);
  return files;
}

export interface WritePhantomsOptions extends PhantomOptions {
  out: string;
  cases: number;
  seed: number;
  /** the first case index (default 1: Phantom_001) */
  first?: number;
  onCase?: (done: number, total: number, info: PhantomInfo & { name: string }) => void;
}

export interface WrittenPhantom extends PhantomInfo {
  name: string;
  files: string[];
  /** generation plus writing time */
  seconds: number;
}

/** Generates and writes `cases` cases, one at a time (each case holds about 90 MB in memory). */
export async function writePhantoms(options: WritePhantomsOptions): Promise<WrittenPhantom[]> {
  const written: WrittenPhantom[] = [];
  const first = options.first ?? 1;
  const size: Vec3 | undefined = options.size;
  for (let n = 0; n < options.cases; n++) {
    const started = performance.now();
    const phantom = generatePhantomCase(options.seed, first + n, { size, enhancing: options.enhancing, necrosis: options.necrosis, variety: options.variety });
    const files = await writePhantomCase(options.out, phantom);
    const entry = { name: phantom.name, ...phantom.info, files, seconds: (performance.now() - started) / 1000 };
    written.push(entry);
    options.onCase?.(n + 1, options.cases, entry);
  }
  return written;
}
