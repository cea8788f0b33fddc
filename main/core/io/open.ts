/**
 * Opening whatever the user points at: a BraTS case folder, a .nii/.nii.gz, DICOM files or
 * folders (searched recursively), or a list of those.
 *
 * - A folder holding a BraTS set is that BraTS study (several cases in one folder: one study
 *   each); its other files and sub-folders are ignored, with a note ("BraTS wins").
 * - A NIfTI file is a 'nifti' study named after the file: `{ image }` for 3-D; a 4-D file gives
 *   `{ image_0, image_1, … }` (one 3-D volume per frame, series ids `<file>#<t>`).
 * - Everything else goes to the DICOM reader in one call, so a series spread over several
 *   folders still assembles; the T1, T1ce, T2 and FLAIR series of one examination become one
 *   'dicom' study (dicom-study.ts), every other series a study of its own named after its description.
 *   Folders with no NIfTI inside are handed over whole (the DICOM reader then skips non-DICOM
 *   files with a note); loose files beside NIfTI files are handed over only if they look like DICOM.
 * Paths named explicitly must load; problems with files found while searching a folder become
 * notes, unless nothing at all could be loaded.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { FileError, UserError, fileSystemProblem } from '../errors.ts';
import { NotRegularFileError, openForReading } from '../util/fs.ts';
import { findBratsCases, loadBratsCase, type BratsCaseFiles } from './brats.ts';
import { isNiftiPath, niftiStem, readNifti } from './nifti.ts';
import { describeSegmentationFile, seriesUidsOf, type SegmentationFile } from './segmentations.ts';
import type { DicomSource } from './dicom/index.ts';
import type { Study } from './study.ts';
import type { Volume } from './volume.ts';

export interface OpenResult {
  studies: Study[];
  notes: string[];
  /** DICOM SEG files whose images are not among what was opened (a SEG opened by itself) */
  segmentations: SegmentationFile[];
}

export interface OpenOptions {
  /**
   * What a path holding DICOM SEG files and no images gives: 'error' (the default: callers that
   * need images get a FileError naming the series the SEG belongs to) or 'return' (no studies,
   * the SEGs in `segmentations`: the app lists them and offers to load them onto their series)
   */
  segmentationsOnly?: 'error' | 'return';
}

/** One volume of an opened study with its role in it (sequence name, or 'seg'). */
export interface SeriesEntry {
  volume: Volume;
  study: Study;
  role: string;
}

interface Found {
  brats: { entry: BratsCaseFiles; source: string }[];
  nifti: { file: string; source: string; explicit: boolean }[];
  dicom: { path: string; source: string }[];
  notes: string[];
}

async function looksLikeDicom(file: string): Promise<boolean> {
  const { isDicomBytes } = await import('./dicom/dataset.ts');
  try {
    const handle = await openForReading(file);
    try {
      const head = new Uint8Array(132);
      const { bytesRead } = await handle.read(head, 0, 132, 0);
      return isDicomBytes(head.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  } catch (err) {
    // a FIFO, a device or a file outside the read roots is refused, not taken for "not DICOM"
    if (err instanceof NotRegularFileError || (err instanceof UserError && !(err instanceof FileError))) throw err;
    return false;
  }
}

async function listDir(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new FileError(dir, `cannot list folder: ${fileSystemProblem(err)}`);
  }
  const files: string[] = [];
  const dirs: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue; // .DS_Store, ._* and other hidden metadata
    if (entry.isDirectory()) dirs.push(entry.name);
    // symlinked folders are not followed (they can loop); symlinked files are read
    else if (entry.isFile() || entry.isSymbolicLink()) files.push(entry.name);
  }
  return { files: files.sort(), dirs: dirs.sort() };
}

/** Sorts the contents of `dir` into BraTS cases, NIfTI files and DICOM candidates. */
async function searchFolder(root: string, source: string, found: Found): Promise<void> {
  // first pass: which folders hold NIfTI files at all (the others go to the DICOM reader whole)
  const pending = [root];
  while (pending.length) {
    const dir = pending.shift()!;
    const { files, dirs } = await listDir(dir);
    const { cases, others } = findBratsCases(dir, files);
    if (cases.length) {
      for (const entry of cases) found.brats.push({ entry, source });
      const ignored = others.length + dirs.length;
      if (ignored) found.notes.push(`${dir}: ignored ${ignored} other entr${ignored === 1 ? 'y' : 'ies'} beside the BraTS files`);
      continue;
    }
    const niftiFiles = others.filter(isNiftiPath);
    for (const name of niftiFiles) found.nifti.push({ file: join(dir, name), source, explicit: false });
    const rest = others.filter((name) => !isNiftiPath(name));
    if (!niftiFiles.length && !(await subtreeHasNifti(dir, dirs))) {
      if (rest.length || dirs.length) found.dicom.push({ path: dir, source });
      continue;
    }
    for (const name of rest) {
      const file = join(dir, name);
      if (await looksLikeDicom(file)) found.dicom.push({ path: file, source });
      else found.notes.push(`skipped ${file}: not a NIfTI or DICOM file`);
    }
    pending.push(...dirs.map((d) => join(dir, d)));
  }
}

async function subtreeHasNifti(dir: string, dirs: string[]): Promise<boolean> {
  const pending = dirs.map((d) => join(dir, d));
  while (pending.length) {
    const current = pending.pop()!;
    const listing = await listDir(current);
    if (listing.files.some(isNiftiPath)) return true;
    pending.push(...listing.dirs.map((d) => join(current, d)));
  }
  return false;
}

function niftiStudy(file: string, source: string, volumes: Volume[]): Study {
  const sequences: Record<string, Volume> = {};
  if (volumes.length === 1) sequences.image = volumes[0]!;
  else volumes.forEach((v, t) => (sequences[`image_${t}`] = v));
  return { name: niftiStem(file), kind: 'nifti', source, sequences };
}

/** Makes series ids unique across studies (two folders may both hold `image.nii`). */
function disambiguateIds(studies: Study[]): void {
  const all = listSeries(studies).map((s) => s.volume);
  const counts = new Map<string, number>();
  for (const v of all) counts.set(v.meta.id, (counts.get(v.meta.id) ?? 0) + 1);
  const used = new Set<string>();
  for (const v of all) {
    if (counts.get(v.meta.id) === 1) continue;
    const source = v.meta.sources[0];
    let id = source ? relative(process.cwd(), resolve(source)) : v.meta.id;
    for (let n = 2; used.has(id); n++) id = `${v.meta.id}#${n}`;
    used.add(id);
    v.meta.id = id;
  }
}

/** Opens one path or several (see the module comment for what each becomes). */
export async function openPath(input: string | string[], options: OpenOptions = {}): Promise<OpenResult> {
  const paths = Array.isArray(input) ? input : [input];
  if (!paths.length) throw new FileError('(no path)', 'nothing to open');
  const found: Found = { brats: [], nifti: [], dicom: [], notes: [] };
  const explicitDicom: string[] = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      throw new FileError(path, fileSystemProblem(err));
    }
    if (info.isDirectory()) await searchFolder(path, path, found);
    else if (isNiftiPath(path)) found.nifti.push({ file: path, source: path, explicit: true });
    else explicitDicom.push(path);
  }

  const notes = found.notes;
  const errors: FileError[] = [];
  const loadNifti = async ({ file, source, explicit }: Found['nifti'][number]) => {
    try {
      return niftiStudy(file, source, (await readNifti(file)).volumes);
    } catch (err) {
      if (explicit || !(err instanceof FileError)) throw err;
      errors.push(err);
      notes.push(`skipped ${err.message}`);
      return undefined;
    }
  };
  const dicomPaths = [...explicitDicom, ...found.dicom.map((d) => d.path)];
  const segmentations: SegmentationFile[] = [];
  const loadDicomStudies = async (): Promise<Study[]> => {
    if (!dicomPaths.length) return [];
    const { loadDicom } = await import('./dicom/index.ts');
    try {
      const result = await loadDicom(dicomPaths, { segmentations: true });
      notes.push(...result.notes);
      segmentations.push(...result.segmentations);
      if (!result.series.length) return [];
      const source = paths.length === 1 ? paths[0]! : paths.join(', ');
      const { assembleDicomStudies } = await import('./dicom-study.ts');
      const assembled = assembleDicomStudies(result.series, source);
      notes.push(...assembled.notes);
      return assembled.studies;
    } catch (err) {
      // DICOM met only while searching folders is optional when something else loads
      if (explicitDicom.length || !(err instanceof FileError)) throw err;
      errors.push(err);
      notes.push(`skipped DICOM: ${err.message}`);
      return [];
    }
  };
  // BraTS cases one after the other (each reads its five files at once), a few NIfTI files at
  // a time: enough to keep the zlib pool busy without holding a whole dataset's buffers at once
  const [bratsStudies, niftiStudies, dicomStudies] = await Promise.all([
    mapLimit(found.brats, 1, ({ entry, source }) => loadBratsCase(entry, source)),
    mapLimit(found.nifti, 4, loadNifti),
    loadDicomStudies(),
  ]);
  const studies = [...bratsStudies, ...niftiStudies.filter((s): s is Study => s !== undefined), ...dicomStudies];
  const unmatched = attachSegmentations(studies, segmentations, notes);
  if (!studies.length && unmatched.length) {
    if (options.segmentationsOnly === 'return') return { studies, notes, segmentations: unmatched };
    const first = unmatched[0]!;
    throw new FileError(first.file, `${segmentationOnlyProblem(first)}${unmatched.length > 1 ? ` (and ${unmatched.length - 1} more SEG file${unmatched.length > 2 ? 's' : ''})` : ''}`);
  }
  if (!studies.length) {
    if (errors.length === 1) throw errors[0]!;
    const where = paths.length === 1 ? paths[0]! : paths.join(', ');
    throw new FileError(where, errors.length ? `no loadable images (${errors.length} failed, first: ${errors[0]!.message})` : 'no NIfTI or DICOM images found');
  }
  disambiguateIds(studies);
  return { studies, notes, segmentations: unmatched };
}

/** Why a SEG alone is not a study, naming the series it belongs to. */
export function segmentationOnlyProblem(seg: SegmentationFile): string {
  const segments = seg.segments.map((s) => `${s.number} ${s.name}`).join(', ') || 'none';
  const series = seg.referencedSeriesUid ? `series ${seg.referencedSeriesUid}${seg.referencedInstances ? ` (${seg.referencedInstances} image${seg.referencedInstances === 1 ? '' : 's'})` : ''}` : 'a series it does not name';
  return `a DICOM SEG (segmentation, segments: ${segments}) of ${series}, not an image series; open that series, then load this file onto it as a mask`;
}

/**
 * Gives each SEG to the study whose images it references (the app offers it as a mask); returns
 * the SEGs of series that are not here, with a note when there are studies to say it beside.
 */
function attachSegmentations(studies: Study[], segmentations: SegmentationFile[], notes: string[]): SegmentationFile[] {
  const unmatched: SegmentationFile[] = [];
  for (const seg of segmentations) {
    const study = seg.referencedSeriesUid ? studies.find((s) => seriesUidsOf(s).has(seg.referencedSeriesUid!)) : undefined;
    if (study) {
      study.segmentations = [...(study.segmentations ?? []), seg];
      study.notes = [...(study.notes ?? []), `${describeSegmentationFile(seg)} of this study's images: Load mask offers it`];
    } else {
      unmatched.push(seg);
      if (studies.length) notes.push(`${describeSegmentationFile(seg)} of ${seg.referencedSeriesUid ? `series ${seg.referencedSeriesUid}` : 'an unnamed series'}, which is not among the images opened`);
    }
  }
  return unmatched;
}

/**
 * DICOM instances already in hand (parsed from memory, or read by readDicomCandidates) opened as
 * the folder `location` holding them would be: sorted by file name as a folder walk sorts them,
 * then the same series assembly (loadDicomSources), study assembly (dicom-study.ts) and series
 * naming as openPath. A study fetched from a PACS goes through here without being read back
 * from the cache files it was just written to.
 */
export async function openDicomSources(sources: DicomSource[], location: string): Promise<OpenResult> {
  const [{ loadDicomSources }, { assembleDicomStudies }] = await Promise.all([import('./dicom/index.ts'), import('./dicom-study.ts')]);
  const notes: string[] = [];
  const sorted = [...sources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const result = await loadDicomSources(sorted, location, notes, { segmentations: true });
  const assembled = result.series.length ? assembleDicomStudies(result.series, location) : { studies: [], notes: [] };
  notes.push(...assembled.notes);
  disambiguateIds(assembled.studies);
  // a SEG stored beside the images (one this app sent, say) is offered as a mask, as in a folder
  return { studies: assembled.studies, notes, segmentations: attachSegmentations(assembled.studies, result.segmentations, notes) };
}

/** Like Promise.all over items.map(task), with at most `limit` tasks running; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every volume of the studies, in order: sequences, then the ground truth. */
export function listSeries(studies: Study[]): SeriesEntry[] {
  const out: SeriesEntry[] = [];
  for (const study of studies) {
    for (const [role, volume] of Object.entries(study.sequences)) out.push({ volume, study, role });
    if (study.seg) out.push({ volume: study.seg, study, role: 'seg' });
  }
  return out;
}
