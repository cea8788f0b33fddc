import type { StudyMetadata } from '../api.ts';
import type { SegmentationFile } from './segmentation-file.ts';
import type { Volume } from './volume.ts';

export type { StudyMetadata };

export type StudyKind = 'brats' | 'nifti' | 'dicom';

/** The four BraTS sequences, in the order the files list them. */
export const BRATS_SEQUENCES = ['t1', 't1ce', 't2', 'flair'] as const;
export type BratsSequence = (typeof BRATS_SEQUENCES)[number];

/**
 * One or more co-registered volumes of one subject plus optional ground truth
 * (architecture.md). DICOM series of one patient's study that are T1, T1ce, T2 and FLAIR on one
 * frame of reference make one study, like a BraTS case (dicom-study.ts); other series stay apart.
 */
export interface Study {
  /** the case name: BraTS case id, NIfTI file stem or DICOM series description/UID */
  name: string;
  kind: StudyKind;
  /** the path the user gave */
  source: string;
  /**
   * sequence name → volume; all on the same grid. Recognised sequences use the BraTS names (t1,
   * t1ce, t2, flair); other single-volume studies use the key 'image'.
   */
  sequences: Record<string, Volume>;
  /** ground-truth label map on the same grid, if present */
  seg?: Volume;
  /** who and what the study is (DICOM); NIfTI and BraTS studies have none */
  metadata?: StudyMetadata;
  /** DICOM: the series behind the sequences, with the role each plays (changeable, see dicom-study.ts) */
  series?: StudySeries[];
  /** how the study was assembled, for the user (resampling, series kept apart) */
  notes?: string[];
  /** DICOM SEG files found with the study that reference its images: masks the user may load */
  segmentations?: SegmentationFile[];
}

export interface StudySeries {
  /** SeriesInstanceUID (the volume id) */
  id: string;
  description: string;
  seriesNumber?: number;
  /** the key of `sequences` it fills */
  role: BratsSequence;
  recognised: BratsSequence | null;
  reason: string;
  /** the series as read, on its own grid (the sequence itself when no resampling was needed) */
  volume: Volume;
  /** whether sequences[role] is this series resampled onto the study's grid */
  resampled: boolean;
}
