/**
 * A parsed DICOM file that can be queried by keyword. Parsing (dicom-parser: element offsets
 * only) is kept apart from decoding (typed values here, pixels in pixels.ts), as pydicom does,
 * so a header-only question never touches the pixel bytes.
 *
 * dicom-parser throws strings, plain objects and RangeErrors on corrupt input; every call into
 * it goes through `guard`, so the only error that leaves this module is a FileError.
 */
import { closeSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import dicomParser from 'dicom-parser';
import type { DataSet, Element } from 'dicom-parser';
import { FileError, errorMessage } from '../../errors.ts';
import { openForReadingSync, readRegularFile } from '../../util/fs.ts';

/** The tags this reader uses, by keyword, with the VR that decides how a value is read. */
export const TAGS = {
  TransferSyntaxUID: ['x00020010', 'UI'],
  SOPClassUID: ['x00080016', 'UI'],
  SOPInstanceUID: ['x00080018', 'UI'],
  StudyDate: ['x00080020', 'DA'],
  SeriesDate: ['x00080021', 'DA'],
  StudyTime: ['x00080030', 'TM'],
  AccessionNumber: ['x00080050', 'SH'],
  Modality: ['x00080060', 'CS'],
  Manufacturer: ['x00080070', 'LO'],
  ReferringPhysicianName: ['x00080090', 'PN'],
  InstitutionName: ['x00080080', 'LO'],
  SeriesTime: ['x00080031', 'TM'],
  StudyDescription: ['x00081030', 'LO'],
  SeriesDescription: ['x0008103e', 'LO'],
  PatientName: ['x00100010', 'PN'],
  PatientID: ['x00100020', 'LO'],
  PatientBirthDate: ['x00100030', 'DA'],
  PatientSex: ['x00100040', 'CS'],
  ContrastBolusAgent: ['x00180010', 'LO'],
  ScanningSequence: ['x00180020', 'CS'],
  SequenceName: ['x00180024', 'SH'],
  SliceThickness: ['x00180050', 'DS'],
  RepetitionTime: ['x00180080', 'DS'],
  EchoTime: ['x00180081', 'DS'],
  InversionTime: ['x00180082', 'DS'],
  ProtocolName: ['x00181030', 'LO'],
  SpacingBetweenSlices: ['x00180088', 'DS'],
  StudyInstanceUID: ['x0020000d', 'UI'],
  SeriesInstanceUID: ['x0020000e', 'UI'],
  StudyID: ['x00200010', 'SH'],
  SeriesNumber: ['x00200011', 'IS'],
  InstanceNumber: ['x00200013', 'IS'],
  ImagePositionPatient: ['x00200032', 'DS'],
  ImageOrientationPatient: ['x00200037', 'DS'],
  FrameOfReferenceUID: ['x00200052', 'UI'],
  SamplesPerPixel: ['x00280002', 'US'],
  PhotometricInterpretation: ['x00280004', 'CS'],
  PlanarConfiguration: ['x00280006', 'US'],
  NumberOfFrames: ['x00280008', 'IS'],
  Rows: ['x00280010', 'US'],
  Columns: ['x00280011', 'US'],
  PixelSpacing: ['x00280030', 'DS'],
  BitsAllocated: ['x00280100', 'US'],
  BitsStored: ['x00280101', 'US'],
  HighBit: ['x00280102', 'US'],
  PixelRepresentation: ['x00280103', 'US'],
  WindowCenter: ['x00281050', 'DS'],
  WindowWidth: ['x00281051', 'DS'],
  RescaleIntercept: ['x00281052', 'DS'],
  RescaleSlope: ['x00281053', 'DS'],
  PixelMeasuresSequence: ['x00289110', 'SQ'],
  PixelValueTransformationSequence: ['x00289145', 'SQ'],
  PlanePositionSequence: ['x00209113', 'SQ'],
  PlaneOrientationSequence: ['x00209116', 'SQ'],
  FrameContentSequence: ['x00209111', 'SQ'],
  SharedFunctionalGroupsSequence: ['x52009229', 'SQ'],
  PerFrameFunctionalGroupsSequence: ['x52009230', 'SQ'],
  GridFrameOffsetVector: ['x3004000c', 'DS'],
  PixelData: ['x7fe00010', 'OW'],
  // segmentations (DICOM SEG): recognised in study folders and listed, not read as images
  CodeValue: ['x00080100', 'SH'],
  CodingSchemeDesignator: ['x00080102', 'SH'],
  CodeMeaning: ['x00080104', 'LO'],
  ReferencedSeriesSequence: ['x00081115', 'SQ'],
  ReferencedInstanceSequence: ['x0008114a', 'SQ'],
  SegmentationType: ['x00620001', 'CS'],
  SegmentSequence: ['x00620002', 'SQ'],
  SegmentedPropertyCategoryCodeSequence: ['x00620003', 'SQ'],
  SegmentNumber: ['x00620004', 'US'],
  SegmentLabel: ['x00620005', 'LO'],
  SegmentDescription: ['x00620006', 'ST'],
  SegmentedPropertyTypeCodeSequence: ['x0062000f', 'SQ'],
} as const satisfies Record<string, readonly [string, string]>;

export type Keyword = keyof typeof TAGS;

/** Transfer syntaxes by UID, for messages. */
export const TRANSFER_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

/** SOP classes worth naming when a file is refused as "not an image". */
export const SOP_CLASS_NAMES: Record<string, string> = {
  '1.2.840.10008.1.3.10': 'Media Storage Directory (DICOMDIR)',
  '1.2.840.10008.5.1.4.1.1.88.11': 'Basic Text SR',
  '1.2.840.10008.5.1.4.1.1.88.22': 'Enhanced SR',
  '1.2.840.10008.5.1.4.1.1.88.33': 'Comprehensive SR',
  '1.2.840.10008.5.1.4.1.1.88.34': 'Comprehensive 3D SR',
  '1.2.840.10008.5.1.4.1.1.88.59': 'Key Object Selection Document',
  '1.2.840.10008.5.1.4.1.1.481.1': 'RT Image',
  '1.2.840.10008.5.1.4.1.1.481.2': 'RT Dose',
  '1.2.840.10008.5.1.4.1.1.481.3': 'RT Structure Set',
  '1.2.840.10008.5.1.4.1.1.481.4': 'RT Beams Treatment Record',
  '1.2.840.10008.5.1.4.1.1.481.5': 'RT Plan',
  '1.2.840.10008.5.1.4.1.1.481.8': 'RT Ion Plan',
  '1.2.840.10008.5.1.4.1.1.9.1.1': '12-lead ECG Waveform',
  '1.2.840.10008.5.1.4.1.1.9.1.2': 'General ECG Waveform',
  '1.2.840.10008.5.1.4.1.1.104.1': 'Encapsulated PDF',
  '1.2.840.10008.5.1.4.1.1.66': 'Raw Data',
  '1.2.840.10008.5.1.4.1.1.66.4': 'Segmentation',
  '1.2.840.10008.5.1.4.1.1.66.5': 'Surface Segmentation',
  '1.2.840.10008.5.1.4.1.1.11.1': 'Grayscale Softcopy Presentation State',
  '1.2.840.10008.5.1.4.1.1.2': 'CT Image',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image',
  '1.2.840.10008.5.1.4.1.1.4.1': 'Enhanced MR Image',
  '1.2.840.10008.5.1.4.1.1.7': 'Secondary Capture Image',
};

const DEFLATED = '1.2.840.10008.1.2.1.99';
/** Inflated datasets larger than this are refused instead of exhausting memory (zip bombs). */
const MAX_INFLATED_BYTES = 512 * 2 ** 20;

/** Runs a dicom-parser call; whatever it throws becomes a FileError about `file`. */
export function guard<T>(file: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FileError) throw err;
    throw new FileError(file, `${what}: ${describeThrown(err)}`);
  }
}

/** dicom-parser throws strings, {exception, dataSet} objects and Errors; make one readable line. */
export function describeThrown(err: unknown): string {
  let message: string;
  if (err && typeof err === 'object' && 'exception' in err) message = describeThrown((err as { exception: unknown }).exception);
  else message = errorMessage(err);
  // the parser recurses per sequence level: a hostile depth overflows the stack
  if (/Maximum call stack size exceeded/.test(message)) return 'sequences nested too deeply to read (thousands of levels; no real file has more than a few)';
  if (/maxPosition|invalid value for parameter/.test(message)) return 'an item or element length runs past the end of the file (corrupt length)';
  if (/buffer overrun|past end of buffer|cannot be greater than/.test(message)) message = `file is truncated or an element length is corrupt (${message.replace(/^dicomParser[.:]\w*:?\s*/, '')})`;
  return message.replace(/^dicomParser[.:]\w*:?\s*/, '').replace(/\s+/g, ' ').trim().slice(0, 300) || 'unknown error';
}

/** True when the bytes carry the DICOM Part 10 signature ("DICM" after the 128-byte preamble). */
export function hasDicomSignature(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/**
 * Recognises a raw dataset without preamble/meta group (old ACR-NEMA style exports): it starts
 * with a group-0008 element. Returns the transfer syntax to parse it with, or undefined.
 */
function rawDatasetSyntax(bytes: Uint8Array): string | undefined {
  if (bytes.length < 8 || bytes[0] !== 0x08 || bytes[1] !== 0x00) return undefined;
  const vr = String.fromCharCode(bytes[4]!, bytes[5]!);
  return /^[A-Z]{2}$/.test(vr) ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2';
}

export function isDicomBytes(bytes: Uint8Array): boolean {
  return hasDicomSignature(bytes) || rawDatasetSyntax(bytes) !== undefined;
}

/** Parses a DICOM file held in memory. `name` is used in every error message. */
export function parseDicomBuffer(bytes: Uint8Array, name: string): DicomDataset {
  if (!isDicomBytes(bytes)) throw new FileError(name, 'not a DICOM file');
  const rawSyntax = hasDicomSignature(bytes) ? undefined : rawDatasetSyntax(bytes);
  const options = {
    ...(rawSyntax ? { TransferSyntaxUID: rawSyntax } : {}),
    inflater: (array: Uint8Array, position: number) => inflate(name, array, position),
  };
  let dataSet: DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes, options);
  } catch (err) {
    if (err instanceof FileError) throw err;
    // a file cut short inside its pixel data still has a complete header: keep it, so the
    // pixel decoder can say precisely what is missing (as pydicom does)
    const partial = err && typeof err === 'object' && 'dataSet' in err ? (err as { dataSet?: DataSet }).dataSet : undefined;
    if (!partial?.elements?.x7fe00010) throw new FileError(name, `cannot parse DICOM: ${describeThrown(err)}`);
    dataSet = partial;
  }
  return new DicomDataset(dataSet, name);
}

/** Deflated syntax: the meta group stays as is, everything after it is raw deflate. */
function inflate(name: string, array: Uint8Array, position: number): Uint8Array {
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(array.subarray(position), { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (err) {
    throw new FileError(name, `cannot inflate deflated dataset: ${errorMessage(err)}`);
  }
  const whole = Buffer.allocUnsafe(position + inflated.length);
  whole.set(array.subarray(0, position), 0);
  whole.set(inflated, position);
  return whole;
}

const BYTES_PER_VALUE: Record<string, number> = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8 };

/**
 * One dataset (a file, or an item of a sequence) with typed, keyword-based accessors. Values
 * that are absent, empty or unreadable read as undefined; callers decide what is required.
 */
export class DicomDataset {
  readonly raw: DataSet;
  readonly file: string;
  /** set when only the header was read: where PixelData's value lies in the file on disk */
  readonly deferredPixels?: DeferredPixels;

  constructor(raw: DataSet, file: string, deferredPixels?: DeferredPixels) {
    this.raw = raw;
    this.file = file;
    this.deferredPixels = deferredPixels;
  }

  get transferSyntax(): string {
    return this.string('TransferSyntaxUID') ?? '1.2.840.10008.1.2';
  }

  get isDeflated(): boolean {
    return this.transferSyntax === DEFLATED;
  }

  element(keyword: Keyword): Element | undefined {
    return this.raw.elements[TAGS[keyword][0]];
  }

  has(keyword: Keyword): boolean {
    const element = this.element(keyword);
    return element !== undefined && element.length > 0;
  }

  /** Text value with padding removed; multi-valued strings come back whole (with backslashes). */
  string(keyword: Keyword): string | undefined {
    const element = this.element(keyword);
    if (!element || element.length <= 0 || !this.#inBounds(element)) return undefined;
    const text = guard(this.file, `cannot read ${keyword}`, () => this.raw.string(TAGS[keyword][0]));
    const cleaned = text?.replace(/\u0000+$/, '').trim();
    return cleaned ? cleaned : undefined;
  }

  /** All numeric values of an element, whether binary (US, SS, FL, …) or text (DS, IS). */
  numbers(keyword: Keyword): number[] | undefined {
    const [tag, vr] = TAGS[keyword] as readonly [string, string];
    const element = this.raw.elements[tag];
    if (!element || element.length <= 0 || !this.#inBounds(element)) return undefined;
    const size = BYTES_PER_VALUE[vr];
    if (size !== undefined) {
      const count = Math.floor(element.length / size);
      if (count === 0) return undefined;
      const values: number[] = [];
      for (let i = 0; i < Math.min(count, 64); i++) {
        const value = guard(this.file, `cannot read ${keyword}`, () => {
          switch (vr) {
            case 'US': return this.raw.uint16(tag, i);
            case 'SS': return this.raw.int16(tag, i);
            case 'UL': return this.raw.uint32(tag, i);
            case 'SL': return this.raw.int32(tag, i);
            case 'FL': return this.raw.float(tag, i);
            default: return this.raw.double(tag, i);
          }
        });
        if (value === undefined) return undefined;
        values.push(value);
      }
      return values;
    }
    const text = this.string(keyword);
    if (text === undefined) return undefined;
    const values = text.split('\\').map((part) => Number(part.trim()));
    return values.every((v) => Number.isFinite(v)) ? values : undefined;
  }

  /** The first numeric value, or undefined. */
  number(keyword: Keyword): number | undefined {
    return this.numbers(keyword)?.[0];
  }

  /** Items of a sequence as datasets (shares the bytes; no copy). */
  items(keyword: Keyword): DicomDataset[] {
    const element = this.element(keyword);
    if (!element?.items) return [];
    const out: DicomDataset[] = [];
    for (const item of element.items) if (item.dataSet) out.push(new DicomDataset(item.dataSet, this.file));
    return out;
  }

  /** Where the element's value lies within the (possibly inflated) byte array. */
  #inBounds(element: Element): boolean {
    return element.dataOffset >= 0 && element.dataOffset + element.length <= this.raw.byteArray.length;
  }

  /** Bytes of an element's value (a view, no copy); undefined when absent. */
  bytes(keyword: Keyword): Uint8Array | undefined {
    if (keyword === 'PixelData' && this.deferredPixels) return undefined;
    const element = this.element(keyword);
    const array = this.raw.byteArray;
    if (!element || !(element.length >= 0) || !(element.dataOffset >= 0) || element.dataOffset > array.length) return undefined;
    // a length running past the end (truncated file) yields what is there; callers check sizes
    return array.subarray(element.dataOffset, Math.min(array.length, element.dataOffset + element.length));
  }
}

/** PixelData left on disk: its value starts at `offset` and has `length` bytes, of which `available` exist. */
export interface DeferredPixels {
  offset: number;
  length: number;
  available: number;
}

/** Transfer syntaxes whose pixel bytes can be read from disk straight into a volume. */
const DIRECT_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);

/**
 * Parses only the header of a file (its first bytes, `head`), stopping at PixelData, so the
 * pixels can later be read from disk straight into their place in a volume. Returns
 * undefined when the head is not enough (header longer than the head, compressed or deflated
 * data, anything unusual): the caller then reads the whole file.
 */
export function parseDicomHead(head: Uint8Array, name: string, fileSize: number): DicomDataset | undefined {
  if (!hasDicomSignature(head)) return undefined;
  let dataSet: DataSet;
  try {
    dataSet = dicomParser.parseDicom(head, { untilTag: TAGS.PixelData[0] });
  } catch {
    return undefined;
  }
  const element = dataSet.elements[TAGS.PixelData[0]];
  const syntax = dataSet.string(TAGS.TransferSyntaxUID[0]);
  if (!element || !syntax || !DIRECT_SYNTAXES.has(syntax) || element.hadUndefinedLength || !(element.length >= 0)) return undefined;
  return new DicomDataset(dataSet, name, { offset: element.dataOffset, length: element.length, available: Math.max(0, fileSize - element.dataOffset) });
}

/** Reads `target.length` bytes of deferred pixel data (from `skip` bytes in) straight from the file into `target`. */
export function readDeferredPixels(ds: DicomDataset, target: Uint8Array, skip = 0): void {
  const deferred = ds.deferredPixels;
  if (!deferred) throw new Error('pixel data is not deferred');
  const fd = openForReadingSync(ds.file);
  try {
    let done = 0;
    while (done < target.length) {
      const n = readSync(fd, target, done, target.length - done, deferred.offset + skip + done);
      if (n === 0) throw new FileError(ds.file, `truncated pixel data: file ended after ${done} of ${target.length} bytes (changed while reading?)`);
      done += n;
    }
  } catch (err) {
    if (err instanceof FileError) throw err;
    throw new FileError(ds.file, `cannot read pixel data: ${errorMessage(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** Reads and parses one file from disk. */
export async function parseDicomFile(path: string): Promise<DicomDataset> {
  return parseDicomBuffer(await readRegularFile(path), path);
}
