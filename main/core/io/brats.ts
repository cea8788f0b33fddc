/**
 * BraTS cases: `<case>_{t1,t1ce,t2,flair}.nii[.gz]` plus optional `<case>_seg.nii[.gz]` in one
 * folder make one Study (BraTS 2023's `<case>-{t1n,t1c,t2w,t2f,seg}` are read as the same roles). The five files are read concurrently (gzip inflates in the libuv pool)
 * and must lie on one grid.
 */
import { join } from 'node:path';
import { FileError } from '../errors.ts';
import { readNifti } from './nifti.ts';
import { BRATS_SEQUENCES, type BratsSequence, type Study } from './study.ts';
import { Volume, affineLPS, sameGrid, type Geometry } from './volume.ts';

export type BratsRole = BratsSequence | 'seg';
const ROLES: readonly BratsRole[] = [...BRATS_SEQUENCES, 'seg'];
const BRATS_FILE = /^(.+)[_-](t1|t1ce|t2|flair|seg|t1n|t1c|t2w|t2f)\.nii(\.gz)?$/i;
/** BraTS 2023+ names (`<case>-t1n.nii.gz`, …) for the same four sequences */
const ALIASES: Record<string, BratsRole> = { t1n: 't1', t1c: 't1ce', t2w: 't2', t2f: 'flair' };
const DESCRIPTIONS: Record<BratsRole, string> = { t1: 'T1', t1ce: 'T1ce', t2: 'T2', flair: 'FLAIR', seg: 'Segmentation' };

export interface BratsCaseFiles {
  /** the case id, e.g. BraTS20_Training_001 */
  name: string;
  dir: string;
  /** role → absolute or relative path of the file */
  files: Partial<Record<BratsRole, string>>;
}

/**
 * Groups the file names of one folder into BraTS cases. A case needs at least two of its five
 * files here (or a name containing "BraTS") to count, so a lone `scan_t1.nii` stays an ordinary NIfTI.
 * Returns the cases and the names that belong to none.
 */
export function findBratsCases(dir: string, fileNames: string[]): { cases: BratsCaseFiles[]; others: string[] } {
  const byCase = new Map<string, BratsCaseFiles>();
  const claimed = new Map<string, string[]>();
  for (const fileName of [...fileNames].sort()) {
    const match = BRATS_FILE.exec(fileName);
    if (!match) continue;
    const name = match[1]!;
    const suffix = match[2]!.toLowerCase();
    const role = ALIASES[suffix] ?? (suffix as BratsRole);
    const entry = byCase.get(name) ?? { name, dir, files: {} };
    byCase.set(name, entry);
    const previous = entry.files[role];
    if (previous) throw new FileError(join(dir, fileName), `BraTS case ${name} has two ${role} files (also ${previous})`);
    entry.files[role] = join(dir, fileName);
    claimed.set(name, [...(claimed.get(name) ?? []), fileName]);
  }
  const cases = [...byCase.values()].filter((c) => Object.keys(c.files).length >= 2 || /brats/i.test(c.name));
  const taken = new Set(cases.flatMap((c) => claimed.get(c.name)!));
  return { cases, others: fileNames.filter((f) => !taken.has(f)) };
}

function format(values: readonly number[]): string {
  return `[${values.map((v) => +v.toFixed(4)).join(', ')}]`;
}

/** What makes two grids differ, in words, for error messages. */
export function describeGridDifference(a: Geometry, b: Geometry, tolerance = 1e-3): string {
  if (a.dims.some((n, i) => n !== b.dims[i])) return `dims ${b.dims.join('×')} vs ${a.dims.join('×')}`;
  const problems: string[] = [];
  if (a.spacing.some((v, i) => Math.abs(v - b.spacing[i]!) > tolerance)) problems.push(`spacing ${format(b.spacing)} vs ${format(a.spacing)}`);
  if (a.origin.some((v, i) => Math.abs(v - b.origin[i]!) > tolerance)) problems.push(`origin ${format(b.origin)} vs ${format(a.origin)}`);
  if (a.direction.some((v, i) => Math.abs(v - b.direction[i]!) > tolerance)) problems.push(`direction ${format(b.direction)} vs ${format(a.direction)}`);
  if (!problems.length) {
    const fa = affineLPS(a);
    const fb = affineLPS(b);
    problems.push(`affine ${format(fb)} vs ${format(fa)}`);
  }
  return problems.join('; ');
}

/** Label maps are stored as uint8 label values whatever the file's type (some BraTS segs are float). */
function asLabelMap(volume: Volume, file: string): Volume {
  if (volume.dtype === 'uint8' && !volume.isScaled) return volume;
  const labels = new Uint8Array(volume.data.length);
  for (let i = 0; i < labels.length; i++) {
    const v = volume.value(i);
    if (!(v >= 0 && v <= 255 && Number.isInteger(v))) {
      throw new FileError(file, `segmentation holds the value ${v} at voxel ${i}; expected integer labels 0…255`);
    }
    labels[i] = v;
  }
  return volume.withData(labels);
}

/** Loads one BraTS case as a Study; `source` is the path the user gave. */
export async function loadBratsCase(entry: BratsCaseFiles, source: string = entry.dir): Promise<Study> {
  const missing = BRATS_SEQUENCES.filter((s) => !entry.files[s]);
  if (missing.length) {
    const found = ROLES.filter((r) => entry.files[r]);
    throw new FileError(entry.dir, `BraTS case ${entry.name} is missing ${missing.join(', ')} (found ${found.join(', ')})`);
  }
  const roles = ROLES.filter((r) => entry.files[r]);
  const images = await Promise.all(
    roles.map((role) =>
      readNifti(entry.files[role]!, { description: DESCRIPTIONS[role], modality: role === 'seg' ? 'SEG' : 'MR' }),
    ),
  );
  const volumes = new Map<BratsRole, Volume>();
  roles.forEach((role, i) => {
    const file = entry.files[role]!;
    const image = images[i]!;
    if (image.volumes.length !== 1) throw new FileError(file, `is 4-D (${image.volumes.length} volumes); BraTS sequences must be 3-D`);
    volumes.set(role, role === 'seg' ? asLabelMap(image.volumes[0]!, file) : image.volumes[0]!);
  });
  const reference = volumes.get('t1')!;
  for (const role of roles) {
    const volume = volumes.get(role)!;
    if (!sameGrid(reference.geometry, volume.geometry)) {
      throw new FileError(
        entry.files[role]!,
        `not on the grid of ${entry.files.t1}: ${describeGridDifference(reference.geometry, volume.geometry)}`,
      );
    }
  }
  const sequences: Record<string, Volume> = {};
  for (const s of BRATS_SEQUENCES) sequences[s] = volumes.get(s)!;
  return { name: entry.name, kind: 'brats', source, sequences, ...(volumes.has('seg') ? { seg: volumes.get('seg')! } : {}) };
}
