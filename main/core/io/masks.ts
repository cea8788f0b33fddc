/**
 * Loading a mask onto an open study: a NIfTI label map (BraTS labels 0/1/2/4, BraTS 2023's 0/1/2/3,
 * or binary) on the study's grid or on another one (resampled nearest-neighbour through world
 * coordinates, with a note), or a DICOM SEG of the study's images (the app's own exports and
 * other tools': BINARY, FRACTIONAL and LABELMAP), its segments mapped to BraTS labels by their
 * labels and codes (segmentations.ts) or by the user's choice when that cannot be told.
 * Runs in the io worker (jobs/worker-jobs.ts): reading, decoding and resampling never block the UI.
 */
import type { MaskInspection, MaskSegmentSummary } from '../api.ts';
import { FileError, UserError } from '../errors.ts';
import { labelMapOf, describeGrid } from '../metrics/cli-support.ts';
import { isNiftiPath, readNifti, readNiftiHeader } from './nifti.ts';
import { overlapFraction, resampleToGrid } from './resample.ts';
import { isSegmentation, proposeLabels, segmentationFile, type SegmentationFile } from './segmentations.ts';
import type { Study } from './study.ts';
import { Volume, sameGrid, type Geometry } from './volume.ts';

/** What a mask is loaded onto: the study's grid and, for DICOM, the series it was read from. */
export interface MaskTarget {
  name: string;
  geometry: Geometry;
  dicom: boolean;
  /** DICOM: each series read, with the grid it was read on (a resampled one differs from the study's) */
  series: { uid: string; description: string; geometry: Geometry }[];
  frameOfReferenceUid?: string;
}

export function maskTargetOf(study: Study): MaskTarget {
  const first = Object.values(study.sequences)[0];
  if (!first) throw new UserError(`${study.name} has no image volume`);
  const series =
    study.series?.map((s) => ({ uid: s.id, description: s.description, geometry: s.volume.geometry })) ??
    Object.values(study.sequences)
      .filter((v) => /^[0-9.]+$/.test(v.meta.id))
      .map((v) => ({ uid: v.meta.id, description: v.meta.description, geometry: v.geometry }));
  return {
    name: study.name,
    geometry: first.geometry,
    dicom: study.kind === 'dicom',
    series,
    ...(first.meta.frameOfReferenceUid ? { frameOfReferenceUid: first.meta.frameOfReferenceUid } : {}),
  };
}

export interface LoadedMask {
  labels: Uint8Array;
  notes: string[];
}

/** BraTS labels as the app keeps them; BraTS 2023 numbers enhancing tumour 3. */
const BRATS_LABELS = new Set([0, 1, 2, 4]);

function labelsPresent(labels: Uint8Array): number[] {
  const seen = new Uint8Array(256);
  for (let i = 0; i < labels.length; i++) seen[labels[i]!] = 1;
  return [...seen.keys()].filter((v) => seen[v]);
}

/** The label map in the app's labels (0/1/2/4), or a FileError saying which values do not fit. */
function toBratsLabels(labels: Uint8Array, file: string, notes: string[]): Uint8Array {
  const present = labelsPresent(labels);
  if (present.every((v) => BRATS_LABELS.has(v))) return labels;
  if (present.every((v) => v <= 3)) {
    notes.push(`${file}: labels 0–3 read as BraTS 2023 numbering: 3 (enhancing tumour) became 4`);
    return labels.map((v) => (v === 3 ? 4 : v));
  }
  if (present.length === 2 && present[0] === 0) {
    notes.push(`${file}: a binary mask (0/${present[1]}): its foreground became label 1`);
    return labels.map((v) => (v ? 1 : 0));
  }
  throw new FileError(file, `holds labels ${present.join(', ')}; a tumour mask holds BraTS labels 0, 1, 2, 4 (or 0–3 as BraTS 2023, or one foreground value)`);
}

/** `volume`'s labels on the study's grid: as they are when the grids match, else resampled nearest-neighbour, with a note. */
function ontoStudyGrid(volume: Volume, target: MaskTarget, file: string, notes: string[]): Uint8Array {
  if (sameGrid(volume.geometry, target.geometry)) return volume.data as Uint8Array;
  const overlap = overlapFraction(target.geometry, volume.geometry);
  if (overlap === 0) throw new FileError(file, `its grid (${describeGrid(volume.geometry)}) does not overlap the study's (${describeGrid(target.geometry)}) in world coordinates`);
  notes.push(
    `${file} is on another grid (${describeGrid(volume.geometry)}); it was resampled nearest-neighbour onto the study's (${describeGrid(target.geometry)}) through world coordinates` +
      (overlap < 0.999 ? `; it covers ${(overlap * 100).toFixed(0)} % of the study, the rest is background` : ''),
  );
  return resampleToGrid(volume, target.geometry, 'nearest').data as Uint8Array;
}

async function readSegmentationHeader(path: string): Promise<SegmentationFile> {
  const { parseDicomFile } = await import('./dicom/dataset.ts');
  const ds = await parseDicomFile(path);
  if (!isSegmentation(ds)) throw new FileError(path, `is a DICOM file but not a segmentation (SOP Class ${ds.string('SOPClassUID') ?? 'missing'}); a mask is a NIfTI label map or a DICOM SEG`);
  return segmentationFile(ds);
}

/** Refuses a SEG of other images than the study's, naming the series it belongs to. */
function checkReferences(seg: SegmentationFile, target: MaskTarget): void {
  const uid = seg.referencedSeriesUid;
  if (uid && target.dicom && !target.series.some((s) => s.uid === uid)) {
    const own = target.series.map((s) => `${s.uid}${s.description ? ` (${s.description})` : ''}`).join(', ');
    throw new FileError(seg.file, `is a segmentation of series ${uid}${seg.referencedInstances ? ` (${seg.referencedInstances} images)` : ''}, not of ${target.name}'s series (${own}); open that series and load it there`);
  }
  if (!uid && target.frameOfReferenceUid && seg.frameOfReferenceUid && seg.frameOfReferenceUid !== target.frameOfReferenceUid) {
    throw new FileError(seg.file, `is on another frame of reference (${seg.frameOfReferenceUid}) than ${target.name} (${target.frameOfReferenceUid}): it does not belong to these images`);
  }
}

function segmentSummaries(seg: SegmentationFile): MaskSegmentSummary[] {
  const proposals = proposeLabels(seg.segments);
  return seg.segments.map((s, i) => ({ number: s.number, name: s.name, ...(s.type ? { type: s.type } : {}), proposed: proposals[i]!.label, reason: proposals[i]!.reason }));
}

/** What a mask file is and how it would load (the segments of a SEG with their proposed labels), before loading it. */
export async function inspectMask(path: string, target: MaskTarget): Promise<MaskInspection> {
  if (isNiftiPath(path)) {
    const header = await readNiftiHeader(path);
    return { path, format: 'nifti', description: `NIfTI ${header.dim.slice(1, 1 + header.dim[0]!).join("×")}`, segments: [], notes: [] };
  }
  const seg = await readSegmentationHeader(path);
  checkReferences(seg, target);
  return { path, format: 'dicom-seg', description: seg.description || 'DICOM SEG', segments: segmentSummaries(seg), notes: [] };
}

/**
 * Loads a mask onto the study's grid. `segmentLabels` (segment number → 0, 1, 2 or 4; 0 leaves
 * it out) overrides the proposed labels of a SEG; a segment without either is refused, naming it.
 */
export async function loadMask(path: string, target: MaskTarget, segmentLabels: Record<string, number> = {}): Promise<LoadedMask> {
  const notes: string[] = [];
  if (isNiftiPath(path)) {
    const { volume, labels } = labelMapOf((await readNifti(path)).volumes, path);
    const brats = toBratsLabels(labels, path, notes);
    return { labels: ontoStudyGrid(volume.withData(brats), target, path, notes), notes };
  }
  const seg = await readSegmentationHeader(path);
  checkReferences(seg, target);
  const summaries = segmentSummaries(seg);
  const chosen = new Map<number, number>();
  for (const s of summaries) {
    const given = segmentLabels[String(s.number)];
    const label = given ?? s.proposed;
    if (label === null) throw new UserError(`${path}: choose the label of segment ${s.number} "${s.name}" (${s.reason})`);
    if (!BRATS_LABELS.has(label)) throw new UserError(`${path}: segment ${s.number} cannot become label ${label}; choose 1, 2, 4 or 0 (leave it out)`);
    chosen.set(s.number, label);
  }
  const { readDicomSeg } = await import('./dicom-seg.ts');
  const labelOf = (segment: { number: number }) => chosen.get(segment.number) ?? 0;
  // frames are placed on the grid of the series the SEG was made on; a resampled series' SEG then goes onto the study's grid
  const referenced = target.series.find((s) => s.uid === seg.referencedSeriesUid);
  let read;
  try {
    read = await readDicomSeg(path, referenced?.geometry ?? target.geometry, { labelOf });
  } catch (err) {
    if (!(err instanceof FileError) || !/not on a slice of the source grid|SEG frames are|orientation differs/.test(err.problem)) throw err;
    // made on other images of the same frame of reference: its own grid, resampled below
    read = await readDicomSeg(path, undefined, { labelOf });
    notes.push(`${path}: its frames do not lie on the study's slices; they were read on their own grid`);
  }
  notes.push(...read.notes.map((n) => `${path}: ${n}`));
  const mapping = summaries.map((s) => `${s.number} ${s.name} → ${chosen.get(s.number) ? `label ${chosen.get(s.number)}` : 'left out'}`).join(', ');
  notes.push(`${path}: segments ${mapping}`);
  return { labels: ontoStudyGrid(read.labels, target, path, notes), notes };
}
