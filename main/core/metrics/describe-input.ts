/**
 * What `sam2unet measure` and `sam2unet compare` read: a label map (NIfTI or DICOM SEG), the
 * study whose images locate the mid-sagittal plane, or a description saved by `measure --json`.
 */
import { readFile } from 'node:fs/promises';
import { FileError, UserError, errorMessage } from '../errors.ts';
import type { Volume } from '../io/volume.ts';
import { labelMapOf, describeGrid } from './cli-support.ts';
import { describeTumour, type TumourDescription } from './describe.ts';
import { detectRegionKind, labelsPresent } from './regions.ts';

export interface LoadedMask {
  volume: Volume;
  labels: Uint8Array;
  notes: string[];
}

/** A label map from a NIfTI file or a DICOM SEG (placed on `source`'s grid when given). */
export async function loadLabelMap(path: string, source?: Volume): Promise<LoadedMask> {
  const { isNiftiPath, readNifti } = await import('../io/nifti.ts');
  if (isNiftiPath(path)) {
    const { volume, labels } = labelMapOf((await readNifti(path)).volumes, path);
    return { volume, labels, notes: [] };
  }
  const { readDicomSeg } = await import('../io/dicom-seg.ts');
  const seg = await readDicomSeg(path, source);
  return { volume: seg.labels, labels: labelMapOf([seg.labels], path).labels, notes: seg.notes };
}

/** The first study found at `path` (openPath's rules): its sequences, all on one grid. */
export async function loadStudyImages(path: string): Promise<{ images: Volume[]; notes: string[] }> {
  const { openPath } = await import('../io/open.ts');
  const { studies, notes } = await openPath(path);
  const study = studies[0];
  if (!study) throw new FileError(path, 'holds no study');
  if (studies.length > 1) notes.push(`${path} holds ${studies.length} studies; the images of "${study.name}" were used`);
  return { images: Object.values(study.sequences), notes };
}

/** Describes a mask, with the study's images when given (they must share the mask's grid). */
export async function describeMaskFile(maskPath: string, studyPath?: string): Promise<{ description: TumourDescription; volume: Volume; notes: string[] }> {
  const { sameGrid } = await import('../io/volume.ts');
  const study = studyPath ? await loadStudyImages(studyPath) : undefined;
  const mask = await loadLabelMap(maskPath, study?.images[0]);
  const images = study?.images.filter((v) => v.components === 1) ?? [];
  if (images.length && !sameGrid(images[0]!.geometry, mask.volume.geometry)) {
    throw new UserError(
      `--mask and --study are on different grids: ${maskPath} is ${describeGrid(mask.volume.geometry)}, the study's images ${describeGrid(images[0]!.geometry)}`,
    );
  }
  const kind = detectRegionKind(labelsPresent(mask.labels));
  const description = describeTumour(mask.labels, mask.volume.geometry, kind, { images: images.map((v) => ({ data: v.isScaled ? v.toFloat32() : v.data })) });
  return { description, volume: mask.volume, notes: [...(study?.notes ?? []), ...mask.notes] };
}

/** A description saved by `measure --json` (the last non-empty line of the file). */
export async function readDescriptionJson(path: string): Promise<TumourDescription> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FileError(path, `cannot read: ${errorMessage(err)}`);
  }
  const line = text.trim().split('\n').pop() ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new FileError(path, `is not the JSON of \`sam2unet measure --json\` (${errorMessage(err)})`);
  }
  const d = parsed as Partial<TumourDescription>;
  if (!d || typeof d !== 'object' || !d.regions || !Array.isArray(d.lesions) || typeof d.rano_sum_products_mm2 !== 'number') {
    throw new FileError(path, 'lacks "regions", "lesions" or "rano_sum_products_mm2": not the JSON of `sam2unet measure --json`');
  }
  return d as TumourDescription;
}

/** A description from a measure JSON file or by describing a mask file. */
export async function descriptionOf(path: string): Promise<TumourDescription> {
  if (path.toLowerCase().endsWith('.json')) return readDescriptionJson(path);
  return (await describeMaskFile(path)).description;
}
