/**
 * The part of dcmjs (which ships no type declarations) that the workstation uses: datasets in
 * dcmjs's "naturalized" form (keyword → value) and its DICOM Part 10 reader/writer.
 */
declare module 'dcmjs' {
  type NaturalDataset = Record<string, unknown>;
  type DenaturalizedDataset = Record<string, { vr: string; Value?: unknown[] }>;

  class DicomDict {
    constructor(meta: DenaturalizedDataset);
    meta: DenaturalizedDataset;
    dict: DenaturalizedDataset;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }

  const dcmjs: {
    data: {
      DicomDict: typeof DicomDict;
      DicomMessage: {
        readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DicomDict;
      };
      DicomMetaDictionary: {
        naturalizeDataset(dataset: DenaturalizedDataset): NaturalDataset;
        denaturalizeDataset(dataset: NaturalDataset): DenaturalizedDataset;
        /** keyed by punctuated tag, "(0010,0010)" */
        dictionary: Record<string, { tag: string; vr: string; name: string } | undefined>;
      };
    };
    log: { setLevel(level: string): void; level?: number };
  };
  export default dcmjs;
}
