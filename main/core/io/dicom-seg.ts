/**
 * DICOM Segmentation (SEG) export and import: a BINARY Segmentation IOD (SOP Class
 * 1.2.840.10008.5.1.4.1.1.66.4) derived from a DICOM-sourced volume, one segment per label value.
 *
 * Frames: one per (segment, source slice) pair in which the segment has at least one voxel, in
 * segment order and then source slice order. Empty frames are left out (they carry no
 * information and would multiply the file size by the number of segments), and so are
 * segments with no voxel at all: segment numbers run 1…n over the segments present (an empty
 * label map gives the first segment with one empty frame on the middle slice). Each
 * segment's label value is kept in its SegmentDescription ("… (label 4)"), which readDicomSeg
 * uses to rebuild the label map.
 */
import { DEFAULT_LABEL_COLOURS, hexToRgb } from '../conventions.ts';
import { randomUUID } from 'node:crypto';
import dcmjs from 'dcmjs';
import { FileError, UserError, errorMessage } from '../errors.ts';
import { readRegularFile, writeFileAtomic } from '../util/fs.ts';
import { Volume, indexToWorld, type Geometry, type Vec3 } from './volume.ts';

export { SEGMENTATION_STORAGE } from './segmentations.ts';
import { SEGMENTATION_STORAGE } from './segmentations.ts';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** our implementation's UID (2.25 + a fixed UUID) and version name, for the file meta header */
const IMPLEMENTATION_CLASS_UID = '2.25.264839294823118090196406203305437398052';
const IMPLEMENTATION_VERSION = 'SAM2UNET_WS_0_1';

export interface CodedConcept {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
}

const sct = (CodeValue: string, CodeMeaning: string): CodedConcept => ({ CodeValue, CodingSchemeDesignator: 'SCT', CodeMeaning });

/** CID 7150 category of tumour parts and the brain as anatomic region */
export const CODES = {
  morphologicallyAltered: sct('49755003', 'Morphologically Altered Structure'),
  necrosis: sct('6574001', 'Necrosis'),
  edema: sct('79654002', 'Edema'),
  neoplasm: sct('108369006', 'Neoplasm'),
  brain: sct('12738006', 'Brain'),
} as const;

export interface SegmentSpec {
  /** the value in the label map */
  label: number;
  name: string;
  category?: CodedConcept;
  type?: CodedConcept;
  /** display colour as sRGB 0–255 (stored as CIELab) */
  colour?: [number, number, number];
}

/** BraTS label values as segments (1 necrotic/non-enhancing core, 2 edema, 4 enhancing tumour). */
// recommended display colours: the app's default label colours (conventions.ts), so a viewer shows the SEG as the app does
export const BRATS_SEGMENTS: SegmentSpec[] = [
  { label: 1, name: 'Necrotic core', category: CODES.morphologicallyAltered, type: CODES.necrosis, colour: hexToRgb(DEFAULT_LABEL_COLOURS.necrotic) },
  { label: 2, name: 'Edema', category: CODES.morphologicallyAltered, type: CODES.edema, colour: hexToRgb(DEFAULT_LABEL_COLOURS.edema) },
  { label: 4, name: 'Enhancing tumour', category: CODES.morphologicallyAltered, type: CODES.neoplasm, colour: hexToRgb(DEFAULT_LABEL_COLOURS.enhancing) },
];

/** A binary mask (label 1) as one "Tumour" segment, painted like label 1 in the app. */
export const BINARY_SEGMENTS: SegmentSpec[] = [{ label: 1, name: 'Tumour', category: CODES.morphologicallyAltered, type: CODES.neoplasm, colour: hexToRgb(DEFAULT_LABEL_COLOURS.necrotic) }];

export interface DicomSegOptions {
  /** label values, x fastest, on the grid of `source` */
  labels: Uint8Array;
  /** the DICOM-sourced volume the labels were computed on */
  source: Volume;
  segments: SegmentSpec[];
  algorithm: { name: string; version: string };
  seriesDescription?: string;
  seriesNumber?: number;
  /** (0070,0080) ContentLabel: upper case, digits, underscore; 16 characters */
  contentLabel?: string;
  manufacturer?: string;
  /** now, unless given (tests) */
  date?: Date;
}

export interface DicomSegSummary {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  frames: number;
  /** the segments written, with their segment numbers and frame counts */
  segments: { number: number; label: number; name: string; frames: number; voxels: number }[];
}

/**
 * A naturalized dataset as a DICOM Part 10 file (explicit VR little endian) with this
 * application's file meta header: every DICOM object the workstation writes goes through here.
 */
export function encodePart10(dataset: Record<string, unknown>, sopClassUid: string, sopInstanceUid: string): Uint8Array {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dict = new DicomDict(
    DicomMetaDictionary.denaturalizeDataset({
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      MediaStorageSOPClassUID: sopClassUid,
      MediaStorageSOPInstanceUID: sopInstanceUid,
      TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: IMPLEMENTATION_VERSION,
    }),
  );
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

/** A new UID under the 2.25 root (a UUID as a decimal integer), as PS3.5 B.2 allows. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** Decimal String: at most 16 characters, no exponent for the values of a geometry. */
function ds(value: number): string {
  if (Object.is(value, -0) || Math.abs(value) < 1e-9) return '0';
  for (let digits = 6; digits >= 0; digits--) {
    const text = value.toFixed(digits).replace(/\.?0+$/, '');
    if (text.length <= 16) return text;
  }
  return value.toExponential(8);
}

const dicomDate = (d: Date) => `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
const dicomTime = (d: Date) =>
  `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`;

/** sRGB (0–255) → DICOM CIELab (PS3.3 C.10.7.1.1: L 0–100, a/b −128–127 scaled to 0–65535). */
function rgbToDicomLab([r, g, b]: [number, number, number]): [number, number, number] {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  // D65 → XYZ, then Lab against the D65 white point
  const x = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047;
  const y = 0.2126 * R + 0.7152 * G + 0.0722 * B;
  const z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const L = 116 * f(y) - 16;
  const a = 500 * (f(x) - f(y));
  const bb = 200 * (f(y) - f(z));
  const clamp = (v: number) => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((a + 128) * 65535) / 255), clamp(((bb + 128) * 65535) / 255)];
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** Row and column direction cosines and the slice normal of a geometry (LPS). */
function planeVectors(geometry: Geometry): { row: Vec3; column: Vec3; normal: Vec3 } {
  const d = geometry.direction;
  const row: Vec3 = [d[0]!, d[3]!, d[6]!];
  const column: Vec3 = [d[1]!, d[4]!, d[7]!];
  const normal: Vec3 = [row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2], row[0] * column[1] - row[1] * column[0]];
  return { row, column, normal };
}

function checkSource(source: Volume, labels: Uint8Array): void {
  const [nx, ny, nz] = source.dims;
  const uids = source.meta.sopInstanceUids;
  const missing = [
    !uids || uids.length !== nz ? `SOPInstanceUIDs for all ${nz} slices` : '',
    source.meta.sopClassUid ? '' : 'SOPClassUID',
    source.meta.studyInstanceUid ? '' : 'StudyInstanceUID',
    source.meta.frameOfReferenceUid ? '' : 'FrameOfReferenceUID',
    /^[0-9.]+$/.test(source.meta.id) ? '' : 'SeriesInstanceUID',
  ].filter(Boolean);
  if (missing.length) {
    throw new UserError(`DICOM SEG needs a volume read from a DICOM series; "${source.meta.id}" lacks ${missing.join(', ')}`);
  }
  if (source.isColour) throw new UserError(`DICOM SEG: source "${source.meta.id}" is a colour image`);
  if (labels.length !== nx * ny * nz) {
    throw new UserError(`DICOM SEG: the label map has ${labels.length} voxels, the source grid ${nx}×${ny}×${nz} needs ${nx * ny * nz}`);
  }
}

/** Builds the naturalized (dcmjs) dataset of a BINARY SEG, plus a summary. */
export function buildDicomSeg(options: DicomSegOptions): { dataset: Record<string, unknown>; pixelData: Uint8Array; summary: DicomSegSummary } {
  const { labels, source, algorithm } = options;
  checkSource(source, labels);
  const { geometry, meta } = source;
  const [nx, ny, nz] = geometry.dims;
  const perSlice = nx * ny;
  const labelValues = new Set<number>();
  for (const segment of options.segments) {
    if (!Number.isInteger(segment.label) || segment.label < 1 || segment.label > 255) throw new UserError(`DICOM SEG: segment label ${segment.label} must be 1…255`);
    if (labelValues.has(segment.label)) throw new UserError(`DICOM SEG: label ${segment.label} listed twice`);
    labelValues.add(segment.label);
  }

  // which (label, slice) pairs hold voxels, and how many voxels per label
  const present = new Map<number, { slices: number[]; voxels: number }>();
  for (const segment of options.segments) present.set(segment.label, { slices: [], voxels: 0 });
  const seen = new Uint8Array(256);
  for (let k = 0; k < nz; k++) {
    seen.fill(0);
    const base = k * perSlice;
    for (let i = 0; i < perSlice; i++) seen[labels[base + i]!] = 1;
    for (const [label, entry] of present) {
      if (seen[label]) entry.slices.push(k);
    }
  }
  for (let i = 0; i < labels.length; i++) {
    const entry = labels[i] ? present.get(labels[i]!) : undefined;
    if (entry) entry.voxels++;
  }
  if (options.segments.length === 0) throw new UserError('DICOM SEG: no segments given');
  let written = options.segments.filter((s) => present.get(s.label)!.slices.length > 0);
  if (written.length === 0) {
    // "no tumour found" is a result too, but a SEG needs a segment and a frame: the first
    // segment, with one empty frame on the middle slice
    written = [options.segments[0]!];
    present.get(written[0]!.label)!.slices.push(Math.floor(nz / 2));
  }

  const extra = (meta.extra?.dicom ?? {}) as Record<string, unknown>;
  const now = options.date ?? new Date();
  const sopInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  const dimensionOrganizationUid = newUid();
  // the reader's id is the SeriesInstanceUID, with ".2", ".3" … appended for the further parts of
  // a series it had to split (several orientations or sizes); the tag itself wins when present
  const sourceSeriesUid = text(extra.SeriesInstanceUID) ?? meta.id;
  const sourceClass = meta.sopClassUid!;
  const uids = meta.sopInstanceUids!;
  const { row, column } = planeVectors(geometry);

  // position dimension index: rank of the slice among the slices that have any frame
  const usedSlices = [...new Set(written.flatMap((s) => present.get(s.label)!.slices))].sort((a, b) => a - b);
  const positionIndex = new Map(usedSlices.map((k, rank) => [k, rank + 1]));

  const frames: Record<string, unknown>[] = [];
  const frameCount = written.reduce((n, s) => n + present.get(s.label)!.slices.length, 0);
  const bitsPerFrame = perSlice;
  const pixelData = new Uint8Array(Math.ceil((frameCount * bitsPerFrame) / 8 / 2) * 2);
  let bit = 0;
  const summarySegments: DicomSegSummary['segments'] = [];
  written.forEach((segment, s) => {
    const number = s + 1;
    const { slices, voxels } = present.get(segment.label)!;
    summarySegments.push({ number, label: segment.label, name: segment.name, frames: slices.length, voxels });
    for (const k of slices) {
      const position = indexToWorld(geometry, 0, 0, k);
      frames.push({
        DerivationImageSequence: [
          {
            SourceImageSequence: [
              {
                ReferencedSOPClassUID: sourceClass,
                ReferencedSOPInstanceUID: uids[k],
                PurposeOfReferenceCodeSequence: [{ CodeValue: '121322', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Source image for image processing operation' }],
              },
            ],
            DerivationCodeSequence: [{ CodeValue: '113076', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Segmentation' }],
          },
        ],
        FrameContentSequence: [{ DimensionIndexValues: [number, positionIndex.get(k)!] }],
        PlanePositionSequence: [{ ImagePositionPatient: position.map(ds) }],
        SegmentIdentificationSequence: [{ ReferencedSegmentNumber: number }],
      });
      // BINARY: one bit per pixel, frames packed back to back, least significant bit first
      const base = k * perSlice;
      for (let i = 0; i < perSlice; i++, bit++) {
        if (labels[base + i] === segment.label) pixelData[bit >> 3]! |= 1 << (bit & 7);
      }
    }
  });

  const segmentSequence = written.map((segment, s) => ({
    SegmentNumber: s + 1,
    SegmentLabel: segment.name.slice(0, 64),
    SegmentDescription: `${segment.name} (label ${segment.label})`.slice(0, 64),
    SegmentAlgorithmType: 'AUTOMATIC',
    SegmentAlgorithmName: algorithm.name.slice(0, 64),
    SegmentedPropertyCategoryCodeSequence: [segment.category ?? CODES.morphologicallyAltered],
    SegmentedPropertyTypeCodeSequence: [segment.type ?? CODES.neoplasm],
    AnatomicRegionSequence: [CODES.brain],
    ...(segment.colour ? { RecommendedDisplayCIELabValue: rgbToDicomLab(segment.colour) } : {}),
  }));

  const manufacturer = options.manufacturer ?? 'SAM2-UNet Workstation';
  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: 'ISO_IR 192',
    ImageType: ['DERIVED', 'PRIMARY'],
    InstanceCreationDate: dicomDate(now),
    InstanceCreationTime: dicomTime(now),
    SOPClassUID: SEGMENTATION_STORAGE,
    SOPInstanceUID: sopInstanceUid,
    StudyDate: text(extra.StudyDate) ?? '',
    SeriesDate: dicomDate(now),
    ContentDate: dicomDate(now),
    StudyTime: text(extra.StudyTime) ?? '',
    SeriesTime: dicomTime(now),
    ContentTime: dicomTime(now),
    AccessionNumber: text(extra.AccessionNumber) ?? '',
    Modality: 'SEG',
    Manufacturer: manufacturer,
    ...(text(extra.InstitutionName) ? { InstitutionName: text(extra.InstitutionName) } : {}),
    ReferringPhysicianName: text(extra.ReferringPhysicianName) ?? '',
    ...(text(extra.StudyDescription) ? { StudyDescription: text(extra.StudyDescription) } : {}),
    SeriesDescription: (options.seriesDescription ?? `${algorithm.name} segmentation`).slice(0, 64),
    ManufacturerModelName: algorithm.name.slice(0, 64),
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: sourceSeriesUid,
        ReferencedInstanceSequence: uids.map((uid) => ({ ReferencedSOPClassUID: sourceClass, ReferencedSOPInstanceUID: uid })),
      },
    ],
    PatientName: text(extra.PatientName) ?? '',
    PatientID: text(extra.PatientID) ?? '',
    PatientBirthDate: text(extra.PatientBirthDate) ?? '',
    PatientSex: text(extra.PatientSex) ?? '',
    DeviceSerialNumber: '1',
    SoftwareVersions: algorithm.version.slice(0, 64),
    StudyInstanceUID: meta.studyInstanceUid,
    SeriesInstanceUID: seriesInstanceUid,
    StudyID: text(extra.StudyID) ?? '',
    SeriesNumber: options.seriesNumber ?? 300,
    InstanceNumber: 1,
    FrameOfReferenceUID: meta.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionOrganizationType: '3D',
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: '0062000B',
        FunctionalGroupPointer: '0062000A',
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: '00200032',
        FunctionalGroupPointer: '00209113',
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: frameCount,
    Rows: ny,
    Columns: nx,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    ContentLabel: (options.contentLabel ?? 'TUMOUR').toUpperCase().replace(/[^A-Z0-9_ ]/g, '_').slice(0, 16),
    ContentDescription: `${algorithm.name} ${algorithm.version}`.slice(0, 64),
    ContentCreatorName: '',
    SegmentationType: 'BINARY',
    SegmentSequence: segmentSequence,
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: [...row, ...column].map(ds) }],
        PixelMeasuresSequence: [
          {
            // PixelSpacing is (between rows, between columns) = (y, x) spacing
            PixelSpacing: [ds(geometry.spacing[1]), ds(geometry.spacing[0])],
            SliceThickness: ds(geometry.spacing[2]),
            SpacingBetweenSlices: ds(geometry.spacing[2]),
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: frames,
    PixelData: [pixelData.buffer],
    _vrMap: { PixelData: 'OB' },
  };
  return { dataset, pixelData, summary: { sopInstanceUid, seriesInstanceUid, frames: frameCount, segments: summarySegments } };
}

/** Writes a BINARY DICOM SEG for `labels` on the grid of the DICOM volume `source` (atomically). */
export async function writeDicomSeg(path: string, options: DicomSegOptions): Promise<DicomSegSummary> {
  const { dataset, summary } = buildDicomSeg(options);
  const bytes = encodePart10(dataset, SEGMENTATION_STORAGE, summary.sopInstanceUid);
  await writeFileAtomic(path, bytes);
  return summary;
}

export interface DicomSegSegment {
  number: number;
  label: number;
  name: string;
  category?: CodedConcept;
  type?: CodedConcept;
}

export interface DicomSegImage {
  /** label values on the source grid (when given) or on the grid the SEG's frames span */
  labels: Volume;
  segments: DicomSegSegment[];
  referencedSeriesUid?: string;
  sopInstanceUid: string;
  /** tolerated oddities of the file */
  notes: string[];
}

const first = <T>(value: unknown): T | undefined => (Array.isArray(value) ? (value[0] as T) : (value as T | undefined));
/** dcmjs naturalizes a one-item sequence to the item itself */
const items = (value: unknown): Record<string, unknown>[] =>
  Array.isArray(value) ? (value as Record<string, unknown>[]) : value && typeof value === 'object' ? [value as Record<string, unknown>] : [];

function numbersOf(value: unknown): number[] {
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return list.map((v) => Number(v));
}

export interface ReadDicomSegOptions {
  /**
   * The label each segment becomes (0 leaves it out); default the "(label N)" of its description,
   * else its segment number
   */
  labelOf?: (segment: DicomSegSegment) => number;
}

/** Transfer syntaxes whose PixelData dcmjs hands over as plain bytes (not encapsulated fragments). */
const NATIVE_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2']);

/**
 * Reads a BINARY, FRACTIONAL or LABELMAP DICOM SEG back into a label map. Frames are placed by
 * their ImagePositionPatient on `source`'s grid when a source is given (the usual case: the
 * volume the SEG was made for); otherwise on a grid spanning the SEG's own frames. A segment's
 * label is what `labelOf` says, by default the "(label N)" of its description when there is one,
 * else its segment number. Where segments overlap, the later frame wins.
 */
export async function readDicomSeg(path: string, source?: Volume | Geometry, options: ReadDicomSegOptions = {}): Promise<DicomSegImage> {
  const bytes = await readRegularFile(path);
  let ds: Record<string, unknown>;
  let transferSyntax: string;
  try {
    const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
    transferSyntax = String((dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.meta) as Record<string, unknown>).TransferSyntaxUID ?? '1.2.840.10008.1.2');
  } catch (err) {
    throw new FileError(path, `not a readable DICOM file (${errorMessage(err)})`);
  }
  if (ds.SOPClassUID !== SEGMENTATION_STORAGE) throw new FileError(path, `not a DICOM SEG (SOP Class ${String(ds.SOPClassUID ?? 'missing')})`);
  const type = String(ds.SegmentationType ?? '');
  if (type !== 'BINARY' && type !== 'FRACTIONAL' && type !== 'LABELMAP') throw new FileError(path, `unsupported SegmentationType "${type}"`);
  if (!NATIVE_SYNTAXES.has(transferSyntax)) throw new FileError(path, `SEG pixel data is compressed (transfer syntax ${transferSyntax}); save it uncompressed (e.g. dcmconv +te) and load it again`);
  const rows = Number(ds.Rows);
  const columns = Number(ds.Columns);
  const frameCount = Number(ds.NumberOfFrames ?? 1);
  const notes: string[] = [];
  let frames = items(ds.PerFrameFunctionalGroupsSequence);
  if (!(rows > 0 && columns > 0 && frameCount > 0) || frames.length < frameCount) {
    throw new FileError(path, `inconsistent SEG: ${rows}×${columns}, ${frameCount} frames, ${frames.length} per-frame groups`);
  }
  if (frames.length > frameCount) {
    // seen in files cut down from bigger ones; the groups of the frames present come first
    notes.push(`${frames.length} per-frame groups for ${frameCount} frames: the extra groups were ignored`);
    frames = frames.slice(0, frameCount);
  }
  const shared = first<Record<string, unknown>>(ds.SharedFunctionalGroupsSequence) ?? {};
  const orientation = numbersOf(first<Record<string, unknown>>(shared.PlaneOrientationSequence)?.ImageOrientationPatient);
  const measures = first<Record<string, unknown>>(shared.PixelMeasuresSequence) ?? {};
  const pixelSpacing = numbersOf(measures.PixelSpacing);
  const positions = frames.map((f) => {
    const own = first<Record<string, unknown>>(f.PlanePositionSequence)?.ImagePositionPatient;
    return numbersOf(own) as Vec3;
  });
  if (orientation.length !== 6 || positions.some((p) => p.length !== 3 || p.some((v) => !Number.isFinite(v)))) {
    throw new FileError(path, 'SEG frames lack ImageOrientationPatient or ImagePositionPatient');
  }

  const segments: DicomSegSegment[] = items(ds.SegmentSequence).map((item) => {
    const number = Number(item.SegmentNumber);
    const match = /\(label (\d+)\)\s*$/.exec(String(item.SegmentDescription ?? ''));
    return {
      number,
      label: match ? Number(match[1]) : number,
      name: String(item.SegmentLabel ?? `Segment ${number}`),
      category: first<CodedConcept>(item.SegmentedPropertyCategoryCodeSequence),
      type: first<CodedConcept>(item.SegmentedPropertyTypeCodeSequence),
    };
  });
  const labelOf = new Map(segments.map((s) => [s.number, options.labelOf ? options.labelOf(s) : s.label]));

  // the target grid
  const row: Vec3 = [orientation[0]!, orientation[1]!, orientation[2]!];
  const column: Vec3 = [orientation[3]!, orientation[4]!, orientation[5]!];
  const normal: Vec3 = [row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2], row[0] * column[1] - row[1] * column[0]];
  const along = (p: Vec3) => p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
  let geometry: Geometry;
  if (source) {
    geometry = source instanceof Volume ? source.geometry : source;
  } else {
    const order = positions.map(along);
    const lo = Math.min(...order);
    const distinct = [...new Set(order.map((v) => Math.round(v * 1000) / 1000))].sort((a, b) => a - b);
    const gaps = distinct.slice(1).map((v, i) => v - distinct[i]!);
    const spacingZ = Number(measures.SpacingBetweenSlices) || (gaps.length ? Math.min(...gaps) : Number(measures.SliceThickness) || 1);
    const start = positions[order.indexOf(lo)]!;
    const nz = Math.round((Math.max(...order) - lo) / spacingZ) + 1;
    geometry = {
      dims: [columns, rows, nz],
      spacing: [pixelSpacing[1] ?? 1, pixelSpacing[0] ?? 1, spacingZ],
      origin: [...start],
      direction: [row[0], column[0], normal[0], row[1], column[1], normal[1], row[2], column[2], normal[2]],
    };
  }
  const [nx, ny, nz] = geometry.dims;
  if (nx !== columns || ny !== rows) throw new FileError(path, `SEG frames are ${columns}×${rows}, the source grid ${nx}×${ny}`);
  const gridNormal = planeVectors(geometry).normal;
  const cosine = gridNormal[0] * normal[0] + gridNormal[1] * normal[1] + gridNormal[2] * normal[2];
  if (Math.abs(Math.abs(cosine) - 1) > 1e-3) throw new FileError(path, 'SEG orientation differs from the source grid');
  const { origin } = geometry;
  // z index of a frame: distance of its position from the grid origin along the slice axis
  const axis: Vec3 = [geometry.direction[2]!, geometry.direction[5]!, geometry.direction[8]!];
  const zOf = (p: Vec3) => ((p[0] - origin[0]) * axis[0] + (p[1] - origin[1]) * axis[1] + (p[2] - origin[2]) * axis[2]) / geometry.spacing[2];

  const pixels = ds.PixelData as ArrayBuffer[] | ArrayBuffer | undefined;
  const buffer = Array.isArray(pixels) ? pixels[0] : pixels;
  if (!buffer) throw new FileError(path, 'SEG has no PixelData');
  const bits = Number(ds.BitsAllocated ?? 1);
  if (type === 'LABELMAP' && bits !== 8 && bits !== 16) throw new FileError(path, `a LABELMAP SEG with ${bits} bits per pixel; 8 or 16 expected`);
  // a LABELMAP's pixels are segment numbers (little endian words when 16 bits)
  const data = type === 'LABELMAP' && bits === 16 ? new Uint16Array(buffer.slice(0, buffer.byteLength - (buffer.byteLength % 2))) : new Uint8Array(buffer);
  const perFrame = rows * columns;
  const needed = type === 'BINARY' ? Math.ceil((perFrame * frameCount) / 8) : perFrame * frameCount;
  if (data.length < needed) throw new FileError(path, `PixelData holds ${data.byteLength} bytes, ${frameCount} frames need ${type === 'LABELMAP' ? needed * (bits / 8) : needed}`);
  const threshold = type === 'FRACTIONAL' ? Number(ds.MaximumFractionalValue ?? 255) / 2 : 0;
  const labelOfPixel = type === 'LABELMAP' ? new Map([...labelOf].filter(([number]) => number > 0)) : undefined;

  const labels = new Uint8Array(nx * ny * nz);
  frames.forEach((frame, f) => {
    const number = Number(first<Record<string, unknown>>(frame.SegmentIdentificationSequence)?.ReferencedSegmentNumber);
    const label = type === 'LABELMAP' ? 0 : labelOf.get(number);
    if (label === undefined) throw new FileError(path, `frame ${f + 1} references segment ${number}, which the SegmentSequence lacks`);
    const zFloat = zOf(positions[f]!);
    const k = Math.round(zFloat);
    // the frame must sit on a slice of the grid, and its in-plane origin on the grid's origin
    const inPlane = indexToWorld(geometry, 0, 0, k);
    const offset = Math.hypot(inPlane[0] - positions[f]![0], inPlane[1] - positions[f]![1], inPlane[2] - positions[f]![2]);
    if (k < 0 || k >= nz || Math.abs(zFloat - k) > 0.01 || offset > 0.01 * Math.max(geometry.spacing[0], geometry.spacing[1], 1)) {
      throw new FileError(path, `frame ${f + 1} at (${positions[f]!.join(', ')}) is not on a slice of the source grid`);
    }
    const base = k * perFrame;
    const start = f * perFrame;
    if (labelOfPixel) {
      for (let i = 0; i < perFrame; i++) {
        const value = data[start + i]!;
        if (value === 0) continue;
        const mapped = labelOfPixel.get(value);
        if (mapped === undefined) throw new FileError(path, `frame ${f + 1} holds segment number ${value}, which the SegmentSequence lacks`);
        if (mapped) labels[base + i] = mapped;
      }
      return;
    }
    if (label === 0) return;
    for (let i = 0; i < perFrame; i++) {
      const on = type === 'BINARY' ? (data[(start + i) >> 3]! >> ((start + i) & 7)) & 1 : data[start + i]! > threshold ? 1 : 0;
      if (on) labels[base + i] = label;
    }
  });

  const referenced = first<Record<string, unknown>>(ds.ReferencedSeriesSequence);
  return {
    labels: new Volume({
      geometry,
      data: labels,
      meta: { id: String(ds.SeriesInstanceUID ?? path), description: String(ds.SeriesDescription ?? 'DICOM SEG'), modality: 'SEG', sources: [path], sopClassUid: SEGMENTATION_STORAGE },
    }),
    segments,
    referencedSeriesUid: referenced ? String(referenced.SeriesInstanceUID ?? '') || undefined : undefined,
    sopInstanceUid: String(ds.SOPInstanceUID ?? ''),
    notes,
  };
}
