/**
 * What a DICOM SEG file is, as read from its header (io/segmentations.ts reads it). Types only,
 * with no imports: the study type (and through it the renderer) refers to them.
 */

export interface SegmentInfo {
  number: number;
  /** SegmentLabel */
  name: string;
  description?: string;
  /** the segmented property type (CodeMeaning) and its code */
  type?: string;
  typeCode?: string;
  category?: string;
}

/** What a DICOM SEG file is, from its header (no pixel read). */
export interface SegmentationFile {
  file: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  description: string;
  /** BINARY, FRACTIONAL or LABELMAP */
  segmentationType: string;
  studyInstanceUid?: string;
  frameOfReferenceUid?: string;
  /** the image series it was made on (ReferencedSeriesSequence), when it says */
  referencedSeriesUid?: string;
  /** how many images of that series it references */
  referencedInstances: number;
  segments: SegmentInfo[];
}
