import type { Volume } from './volume.ts';

export type StudyKind = 'brats' | 'nifti' | 'dicom';

/** The four BraTS sequences, in the order the files list them. */
export const BRATS_SEQUENCES = ['t1', 't1ce', 't2', 'flair'] as const;
export type BratsSequence = (typeof BRATS_SEQUENCES)[number];

/**
 * One or more co-registered volumes of one subject plus optional ground truth
 * (architecture.md). A DICOM folder with several series yields several studies, never a merge.
 */
export interface Study {
  /** the case name: BraTS case id, NIfTI file stem or DICOM series description/UID */
  name: string;
  kind: StudyKind;
  /** the path the user gave */
  source: string;
  /** sequence name → volume; all on the same grid. Single-volume studies use the key 'image'. */
  sequences: Record<string, Volume>;
  /** ground-truth label map on the same grid, if present */
  seg?: Volume;
}
