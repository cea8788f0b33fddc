/**
 * Is a folder a cohort, and which studies does it hold? A cohort is a folder whose sub-folders
 * are studies: BraTS case folders, DICOM study folders, folders of NIfTI files. It is not a
 * cohort when the folder is a study itself (its own files are BraTS, NIfTI or DICOM), nor when
 * its sub-folders are the series of one DICOM examination (they share a StudyInstanceUID).
 * Decided from names and the first bytes of a few files: a 10,000-study archive is listed
 * quickly, and nothing is decoded.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { FileError, UserError, fileSystemProblem } from '../errors.ts';
import { findBratsCases } from '../io/brats.ts';
import { isNiftiPath, niftiStem } from '../io/nifti.ts';
import { openForReading } from '../util/fs.ts';

export type CaseKind = 'brats' | 'dicom' | 'nifti';

export interface CohortCase {
  /** the sub-folder's name, file-system safe and unique in the cohort: the case's folder in the output */
  name: string;
  /** absolute path of the sub-folder */
  path: string;
  kind: CaseKind;
  /** what the file names say before anything is read: the sequences (BraTS roles, NIfTI stems) and whether there is ground truth; absent for DICOM */
  sequences?: string[];
  groundTruth?: boolean;
}

export interface Cohort {
  folder: string;
  cases: CohortCase[];
  /** sub-folders left out (no study in them), in words */
  notes: string[];
}

/** how many files of a folder are peeked at for the DICOM signature */
const PEEK_FILES = 8;
/** how deep DICOM files are looked for below a case folder (series sub-folders) */
const DICOM_DEPTH = 3;

interface Listing {
  files: string[];
  dirs: string[];
}

async function list(dir: string, followLinks: boolean): Promise<Listing> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    throw new FileError(dir, `cannot list folder: ${fileSystemProblem(err)}`);
  });
  const files: string[] = [];
  const dirs: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) dirs.push(entry.name);
    else if (entry.isSymbolicLink() && followLinks) {
      // a cohort is often assembled from links to the studies where they lie
      const target = await stat(join(dir, entry.name)).catch(() => null);
      if (target?.isDirectory()) dirs.push(entry.name);
      else if (target?.isFile()) files.push(entry.name);
    } else if (entry.isFile() || entry.isSymbolicLink()) files.push(entry.name);
  }
  return { files: files.sort(), dirs: dirs.sort() };
}

/** The first DICOM file among `files` of `dir` (by its signature), peeking at a few only. */
async function firstDicom(dir: string, files: string[]): Promise<string | undefined> {
  const { isDicomBytes } = await import('../io/dicom/dataset.ts');
  // likely names first: .dcm files, then files without an extension (IM0001, 1.2.840…)
  const ranked = [...files.filter((f) => /\.dcm$/i.test(f)), ...files.filter((f) => !/\.[a-z]{2,4}$/i.test(f) && !/\.dcm$/i.test(f))];
  for (const name of ranked.slice(0, PEEK_FILES)) {
    const file = join(dir, name);
    try {
      const handle = await openForReading(file);
      try {
        const head = new Uint8Array(132);
        const { bytesRead } = await handle.read(head, 0, 132, 0);
        if (isDicomBytes(head.subarray(0, bytesRead))) return file;
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (err instanceof UserError && !(err instanceof FileError)) throw err; // outside the read roots
    }
  }
  return undefined;
}

/** What the files of one folder make: a BraTS case, NIfTI images, DICOM files, or nothing. */
type Found = Omit<CohortCase, 'name' | 'path'> & { dicomFile?: string };

async function ownStudy(dir: string, listing: Listing): Promise<Found | undefined> {
  try {
    const { cases } = findBratsCases(dir, listing.files);
    if (cases.length) {
      const roles = [...new Set(cases.flatMap((c) => Object.keys(c.files)))];
      return { kind: 'brats', sequences: roles.filter((r) => r !== 'seg').sort(), groundTruth: roles.includes('seg') };
    }
  } catch {
    return { kind: 'brats' }; // two files for one role: a broken BraTS case is still a case (opening it says what is wrong)
  }
  const nifti = listing.files.filter(isNiftiPath);
  if (nifti.length) return { kind: 'nifti', sequences: nifti.map(niftiStem), groundTruth: false };
  const dicomFile = await firstDicom(dir, listing.files);
  return dicomFile ? { kind: 'dicom', dicomFile } : undefined;
}

/** A sub-folder as a study: its own files, or DICOM files in its sub-folders (series folders). */
async function caseStudy(dir: string): Promise<Found | undefined> {
  const pending: { dir: string; depth: number }[] = [{ dir, depth: 0 }];
  while (pending.length) {
    const current = pending.shift()!;
    const listing = await list(current.dir, current.depth === 0);
    const own = await ownStudy(current.dir, listing);
    // below the case folder only DICOM counts: NIfTI or BraTS further down are studies of their own
    if (own && (current.depth === 0 || own.kind === 'dicom')) return own;
    if (current.depth < DICOM_DEPTH) pending.push(...listing.dirs.map((d) => ({ dir: join(current.dir, d), depth: current.depth + 1 })));
  }
  return undefined;
}

async function studyInstanceUid(file: string): Promise<string | undefined> {
  try {
    const { parseDicomFile } = await import('../io/dicom/dataset.ts');
    return (await parseDicomFile(file)).string('StudyInstanceUID');
  } catch {
    return undefined;
  }
}

export interface FindOptions {
  /**
   * the user asked for a cohort (the app's "Open as cohort"): one study sub-folder is a cohort
   * of one, and a folder that is not a cohort is an error saying why
   */
  explicit?: boolean;
}

/**
 * The cohort a folder holds, or null when it is not one (a study, a file, the series folders of
 * one examination). With `explicit`, a reason is thrown instead of returning null.
 */
export async function findCohort(path: string, opts: FindOptions = {}): Promise<Cohort | null> {
  const folder = resolve(path);
  const notCohort = (why: string): null => {
    if (opts.explicit) throw new UserError(`${path} is not a cohort: ${why}`);
    return null;
  };
  const info = await stat(folder).catch(() => null);
  if (!info) {
    if (opts.explicit) throw new FileError(path, 'no such file or folder');
    return null;
  }
  if (!info.isDirectory()) return notCohort('it is a file; a cohort is a folder whose sub-folders are studies');
  const listing = await list(folder, true);
  const own = await ownStudy(folder, listing);
  if (own) return notCohort(`it holds ${own.kind === 'brats' ? 'a BraTS case' : own.kind === 'nifti' ? 'NIfTI images' : 'DICOM files'} itself; open it as one study`);
  const cases: (CohortCase & { dicomFile?: string })[] = [];
  const notes: string[] = [];
  for (const name of listing.dirs) {
    const dir = join(folder, name);
    const study = await caseStudy(dir);
    if (study) cases.push({ name, path: dir, ...study });
    else notes.push(`${dir}: no BraTS, NIfTI or DICOM study in it; left out`);
  }
  if (cases.length === 0) return notCohort('none of its sub-folders holds a BraTS, NIfTI or DICOM study');
  if (!opts.explicit && cases.length < 2) return null;
  // the series folders of one examination are one study, not a cohort
  if (cases.length > 1 && cases.every((c) => c.kind === 'dicom')) {
    const uids = await Promise.all(cases.map((c) => studyInstanceUid(c.dicomFile!)));
    if (uids.every((u) => u !== undefined && u === uids[0])) return notCohort(`its sub-folders are series of one DICOM study (${uids[0]}); open it as one study`);
  }
  const used = new Set<string>();
  const named = cases.map(({ name, dicomFile: _, ...rest }) => {
    let unique = caseFolderName(name);
    for (let n = 2; used.has(unique.toLowerCase()); n++) unique = `${caseFolderName(name)}_${n}`;
    used.add(unique.toLowerCase());
    return { ...rest, name: unique };
  });
  return { folder, cases: named, notes };
}

/** The case's folder name in an output (the sub-folder's name, made file-system safe). */
export function caseFolderName(name: string): string {
  const safe = basename(name).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return safe || 'case';
}
