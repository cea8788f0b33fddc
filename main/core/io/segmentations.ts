/**
 * DICOM segmentations (SEG) met among images: recognised by their SOP class and listed with their
 * segments and the series they reference, instead of being read as one more image series (a SEG
 * holds one frame per segment and slice, so as an image it is "two slices at the same position").
 * Also the rule that maps a SEG's segments to BraTS labels (1 necrotic core, 2 edema, 4 enhancing
 * tumour): the app's own "(label N)", then segment names and SNOMED codes; anything else is asked.
 */
import type { DicomDataset } from './dicom/dataset.ts';
import type { Study } from './study.ts';
import type { Volume } from './volume.ts';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';

export type { SegmentInfo, SegmentationFile } from './segmentation-file.ts';
import type { SegmentInfo, SegmentationFile } from './segmentation-file.ts';

export function isSegmentation(ds: DicomDataset): boolean {
  return ds.string('SOPClassUID') === SEGMENTATION_STORAGE;
}

const code = (ds: DicomDataset | undefined) => (ds ? { meaning: ds.string('CodeMeaning'), value: ds.string('CodeValue') } : {});

export function segmentationFile(ds: DicomDataset): SegmentationFile {
  const referenced = ds.items('ReferencedSeriesSequence')[0];
  return {
    file: ds.file,
    sopInstanceUid: ds.string('SOPInstanceUID') ?? '',
    seriesInstanceUid: ds.string('SeriesInstanceUID') ?? '',
    description: ds.string('SeriesDescription') ?? '',
    segmentationType: ds.string('SegmentationType') ?? '',
    ...(ds.string('StudyInstanceUID') ? { studyInstanceUid: ds.string('StudyInstanceUID') } : {}),
    ...(ds.string('FrameOfReferenceUID') ? { frameOfReferenceUid: ds.string('FrameOfReferenceUID') } : {}),
    ...(referenced?.string('SeriesInstanceUID') ? { referencedSeriesUid: referenced.string('SeriesInstanceUID') } : {}),
    referencedInstances: referenced?.items('ReferencedInstanceSequence').length ?? 0,
    segments: ds.items('SegmentSequence').map((item, n) => {
      const number = item.number('SegmentNumber') ?? n + 1;
      const type = code(item.items('SegmentedPropertyTypeCodeSequence')[0]);
      const category = code(item.items('SegmentedPropertyCategoryCodeSequence')[0]);
      return {
        number,
        name: item.string('SegmentLabel') ?? `Segment ${number}`,
        ...(item.string('SegmentDescription') ? { description: item.string('SegmentDescription') } : {}),
        ...(type.meaning ? { type: type.meaning } : {}),
        ...(type.value ? { typeCode: type.value } : {}),
        ...(category.meaning ? { category: category.meaning } : {}),
      };
    }),
  };
}

/** One line for notes and messages: "<file>: DICOM SEG "<description>", segments 1 Liver, 2 …". */
export function describeSegmentationFile(seg: SegmentationFile): string {
  const segments = seg.segments.map((s) => `${s.number} ${s.name}`).join(', ') || 'none';
  return `${seg.file} is a DICOM SEG${seg.description ? ` "${seg.description}"` : ''} (segments: ${segments})`;
}

/** The BraTS label a segment stands for, and why; null label when it cannot be told. */
export interface LabelProposal {
  label: 0 | 1 | 2 | 4 | null;
  reason: string;
}

// SNOMED CT codes of the app's own export (dicom-seg.ts CODES) and common tumour-part codes
const NECROSIS_CODES = new Set(['6574001']);
const EDEMA_CODES = new Set(['79654002']);

/**
 * Proposes a BraTS label for each segment of a SEG: the app's own "(label N)" description; names
 * such as "necrotic core", "non-enhancing tumour", "edema", "enhancing tumour"; the SNOMED codes
 * of necrosis and edema; a single tumour/lesion segment as a binary mask (label 1). A segment
 * none of these fits (a liver, a second "tumour") gets null: the user is asked.
 */
export function proposeLabels(segments: readonly SegmentInfo[]): LabelProposal[] {
  return segments.map((s) => {
    const own = /\(label (\d+)\)\s*$/.exec(s.description ?? '');
    if (own && [1, 2, 4].includes(Number(own[1]))) return { label: Number(own[1]) as 1 | 2 | 4, reason: `its description says label ${own[1]}` };
    const words = `${s.name} ${s.type ?? ''}`.toLowerCase();
    if (/non[- ]?enhanc|necro|\bncr\b|\bnet\b/.test(words) || (s.typeCode && NECROSIS_CODES.has(s.typeCode))) return { label: 1, reason: 'named or coded as necrotic / non-enhancing core' };
    if (/o?edema|\bed\b|peritumou?ral/.test(words) || (s.typeCode && EDEMA_CODES.has(s.typeCode))) return { label: 2, reason: 'named or coded as edema' };
    if (/enhanc|\bet\b/.test(words)) return { label: 4, reason: 'named as enhancing tumour' };
    if (segments.length === 1 && /tumou?r|lesion|neoplasm|glioma|mass|\bwt\b/.test(words)) return { label: 1, reason: 'the only segment, a tumour: a binary mask' };
    return { label: null, reason: `"${s.name}"${s.type && s.type !== s.name ? ` (${s.type})` : ''} is not a BraTS tumour part` };
  });
}

/** The SeriesInstanceUIDs of the images a study was read from (a SEG referencing one belongs to it). */
export function seriesUidsOf(study: Pick<Study, 'sequences' | 'series'>): Set<string> {
  const uids = new Set<string>();
  const add = (volume: Volume) => {
    const tag = (volume.meta.extra?.dicom as { SeriesInstanceUID?: unknown } | undefined)?.SeriesInstanceUID;
    if (typeof tag === 'string') uids.add(tag);
    if (/^[0-9.]+$/.test(volume.meta.id)) uids.add(volume.meta.id);
  };
  for (const volume of Object.values(study.sequences)) add(volume);
  for (const series of study.series ?? []) {
    uids.add(series.id);
    add(series.volume);
  }
  return uids;
}
