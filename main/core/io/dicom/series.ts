/**
 * From parsed files to volumes: every frame of every file becomes a slice record with its own
 * position; records are grouped by SeriesInstanceUID, orientation and size, sorted along the
 * slice normal (never by InstanceNumber or file name) and checked for even spacing, gantry
 * tilt and duplicates before any pixel is decoded.
 */
import path from 'node:path';
import { FileError } from '../../errors.ts';
import { Volume, type Geometry, type Vec3, type VoxelArray } from '../volume.ts';
import type { DicomDataset } from './dataset.ts';
import { allocateFor, checkPixelData, decodePixels, decodePixelsInto, pixelFormat, valuesPerFrame, type PixelFormat } from './pixels.ts';

/** One 2D frame and where it lies. */
export interface SliceRecord {
  ds: DicomDataset;
  format: PixelFormat;
  /** 0-based frame index within its file */
  frame: number;
  position?: Vec3;
  /** row cosine (x) then column cosine (y), unit length */
  orientation?: number[];
  /** [row spacing, column spacing] as PixelSpacing stores it */
  pixelSpacing?: [number, number];
  slope: number;
  intercept: number;
  sopInstanceUid: string;
}

const ORIENTATION_TOLERANCE = 1e-3;
/** Slices closer than this (mm) along the normal are the same position. */
const DUPLICATE_TOLERANCE = 1e-3;

const IDENTITY_ORIENTATION = [1, 0, 0, 0, 1, 0];

function cross(a: number[], b: number[]): Vec3 {
  return [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
}

function dot(a: readonly number[], b: readonly number[]): number {
  return a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
}

function firstItem(ds: DicomDataset | undefined, keyword: Parameters<DicomDataset['items']>[0]): DicomDataset | undefined {
  return ds?.items(keyword)[0];
}

/** ImageOrientationPatient normalised, or undefined when absent; FileError when unusable. */
function readOrientation(ds: DicomDataset): number[] | undefined {
  const values = ds.numbers('ImageOrientationPatient');
  // numbers() is undefined for text that is not all numbers (NaN, Inf): present but unusable, not absent
  const text = values ? undefined : ds.string('ImageOrientationPatient')?.trim();
  if (text) throw new FileError(ds.file, `invalid ImageOrientationPatient ${text} (not finite numbers)`);
  if (!values) return undefined;
  if (values.length < 6) throw new FileError(ds.file, `ImageOrientationPatient has ${values.length} values, expected 6`);
  // NaN passes every tolerance test below (comparisons with NaN are false)
  if (!values.slice(0, 6).every(Number.isFinite)) throw new FileError(ds.file, `invalid ImageOrientationPatient ${values.slice(0, 6).join('\\')} (not finite numbers)`);
  const row = values.slice(0, 3);
  const col = values.slice(3, 6);
  const rowNorm = Math.hypot(...row);
  const colNorm = Math.hypot(...col);
  if (Math.abs(rowNorm - 1) > 1e-2 || Math.abs(colNorm - 1) > 1e-2 || Math.abs(dot(row, col)) > 1e-2) {
    throw new FileError(ds.file, `invalid ImageOrientationPatient ${values.slice(0, 6).join('\\')} (cosines must be orthogonal unit vectors)`);
  }
  return [...row.map((v) => v / rowNorm), ...col.map((v) => v / colNorm)];
}

function readPosition(ds: DicomDataset | undefined): Vec3 | undefined {
  const values = ds?.numbers('ImagePositionPatient');
  if (!values || values.length < 3) return undefined;
  return [values[0]!, values[1]!, values[2]!];
}

function readPixelSpacing(ds: DicomDataset | undefined): [number, number] | undefined {
  const values = ds?.numbers('PixelSpacing');
  const text = values ? undefined : ds?.string('PixelSpacing')?.trim();
  if (text) throw new FileError(ds!.file, `invalid PixelSpacing ${text} (two positive numbers of mm expected)`);
  if (!values) return undefined;
  // present but unusable is an error, not a silent 1 mm: distances and volumes would be wrong
  if (values.length < 2 || !values.slice(0, 2).every((v) => Number.isFinite(v) && v > 0)) {
    throw new FileError(ds!.file, `invalid PixelSpacing ${values.join('\\')} (two positive numbers of mm expected)`);
  }
  return [values[0]!, values[1]!];
}

function readRescale(ds: DicomDataset | undefined): { slope: number; intercept: number } | undefined {
  if (!ds) return undefined;
  const slope = ds.number('RescaleSlope');
  const intercept = ds.number('RescaleIntercept');
  if (slope === undefined && intercept === undefined) return undefined;
  return { slope: slope !== undefined && slope !== 0 ? slope : 1, intercept: intercept ?? 0 };
}

/** Positive spacing from a DS value, or undefined. */
function positive(value: number | undefined): number | undefined {
  return value !== undefined && value > 0 ? value : undefined;
}

/**
 * The slice records of one parsed image file: one per frame. Multi-frame files take their
 * frame positions from the functional groups when present, else from ImagePositionPatient and
 * GridFrameOffsetVector (RT Dose) or SpacingBetweenSlices, else unit steps along the normal.
 */
export function sliceRecords(ds: DicomDataset): SliceRecord[] {
  const format = pixelFormat(ds);
  checkPixelData(ds, format);
  const sopInstanceUid = ds.string('SOPInstanceUID') ?? ds.file;
  const shared = firstItem(ds, 'SharedFunctionalGroupsSequence');
  const perFrame = ds.items('PerFrameFunctionalGroupsSequence');
  const baseOrientation =
    readOrientation(ds) ?? (shared && firstItem(shared, 'PlaneOrientationSequence') ? readOrientation(firstItem(shared, 'PlaneOrientationSequence')!) : undefined);
  const basePosition = readPosition(ds);
  const baseSpacing = readPixelSpacing(ds) ?? readPixelSpacing(firstItem(shared, 'PixelMeasuresSequence'));
  const baseRescale = readRescale(ds) ?? readRescale(firstItem(shared, 'PixelValueTransformationSequence')) ?? { slope: 1, intercept: 0 };

  if (format.frames === 1 && perFrame.length === 0) {
    return [{ ds, format, frame: 0, position: basePosition, orientation: baseOrientation, pixelSpacing: baseSpacing, ...baseRescale, sopInstanceUid }];
  }

  const records: SliceRecord[] = [];
  const usePerFrame = perFrame.length >= format.frames;
  const normal = baseOrientation ? cross(baseOrientation.slice(0, 3), baseOrientation.slice(3)) : undefined;
  const gridOffsets = ds.numbers('GridFrameOffsetVector');
  const step = positive(ds.number('SpacingBetweenSlices')) ?? 1;
  for (let f = 0; f < format.frames; f++) {
    const groups = usePerFrame ? perFrame[f] : undefined;
    const planeOrientation = firstItem(groups, 'PlaneOrientationSequence');
    const orientation = (planeOrientation && readOrientation(planeOrientation)) || baseOrientation;
    let position = readPosition(firstItem(groups, 'PlanePositionSequence')) ?? readPosition(firstItem(shared, 'PlanePositionSequence'));
    if (!usePerFrame || !position) {
      position = undefined;
      if (basePosition && normal) {
        const offset =
          gridOffsets && gridOffsets.length >= format.frames
            ? gridOffsets[f]! - (gridOffsets[0] !== 0 ? gridOffsets[0]! : 0)
            : f * step;
        position = [basePosition[0] + offset * normal[0], basePosition[1] + offset * normal[1], basePosition[2] + offset * normal[2]];
      }
    }
    records.push({
      ds,
      format,
      frame: f,
      position,
      orientation,
      pixelSpacing: readPixelSpacing(firstItem(groups, 'PixelMeasuresSequence')) ?? baseSpacing,
      ...(readRescale(firstItem(groups, 'PixelValueTransformationSequence')) ?? baseRescale),
      sopInstanceUid,
    });
  }
  return records;
}

interface Group {
  seriesUid: string;
  records: SliceRecord[];
  orientation?: number[];
}

function sameFormat(a: PixelFormat, b: PixelFormat): boolean {
  return a.rows === b.rows && a.columns === b.columns && a.samples === b.samples && a.bitsAllocated === b.bitsAllocated && a.signed === b.signed;
}

function sameOrientation(a: number[] | undefined, b: number[] | undefined): boolean {
  if (!a || !b) return a === b;
  return a.every((v, i) => Math.abs(v - b[i]!) <= ORIENTATION_TOLERANCE);
}

/**
 * Splits records into groups: one per SeriesInstanceUID × orientation × frame size. Frames
 * without a position cannot be ordered against others, so each such file stays on its own.
 */
export function groupRecords(records: SliceRecord[]): Group[] {
  const groups: Group[] = [];
  for (const record of records) {
    const seriesUid = record.ds.string('SeriesInstanceUID') ?? `${record.ds.file}`;
    const positioned = record.position !== undefined;
    const group = groups.find(
      (g) =>
        g.seriesUid === seriesUid &&
        (positioned ? g.records[0]!.position !== undefined : g.records[0]!.ds === record.ds) &&
        sameFormat(g.records[0]!.format, record.format) &&
        sameOrientation(g.orientation, record.orientation),
    );
    if (group) group.records.push(record);
    else groups.push({ seriesUid, records: [record], orientation: record.orientation });
  }
  return groups;
}

/** Volume ids: the SeriesInstanceUID, then `<uid>.2`, `<uid>.3` … for further parts of a split series. */
function assignIds(groups: Group[]): Map<Group, string> {
  const ids = new Map<Group, string>();
  const bySeries = new Map<string, Group[]>();
  for (const g of groups) bySeries.set(g.seriesUid, [...(bySeries.get(g.seriesUid) ?? []), g]);
  for (const [uid, parts] of bySeries) {
    parts.sort((a, b) => b.records.length - a.records.length || a.records[0]!.ds.file.localeCompare(b.records[0]!.ds.file));
    parts.forEach((g, i) => ids.set(g, i === 0 ? uid : `${uid}.${i + 1}`));
  }
  return ids;
}

function seriesLabel(group: Group, id: string): string {
  const description = group.records[0]!.ds.string('SeriesDescription');
  return `series ${id}${description ? ` (${description})` : ''}`;
}

/** The folder (or file) to name in a series error: what the group's files have in common, else `fallback`. */
function groupLocation(group: Group, fallback: string): string {
  const files = [...new Set(group.records.map((r) => r.ds.file))];
  if (files.length === 1) return files[0]!;
  const dirs = [...new Set(files.map((f) => path.dirname(f)))];
  return dirs.length === 1 && dirs[0] !== '.' ? dirs[0]! : fallback;
}

interface Placement {
  geometry: Geometry;
  /** records in z order */
  ordered: SliceRecord[];
}

/** Orders a group along its slice normal and derives the LPS geometry; refuses what would misplace voxels. */
function placeGroup(group: Group, id: string, location: string): Placement {
  const first = group.records[0]!;
  const { rows, columns } = first.format;
  const orientation = group.orientation ?? IDENTITY_ORIENTATION;
  const rowCos = orientation.slice(0, 3);
  const colCos = orientation.slice(3, 6);
  const normal = cross(rowCos, colCos);
  const pixelSpacing = first.pixelSpacing ?? [1, 1];
  const fail = (problem: string): never => {
    throw new FileError(groupLocation(group, location), `${seriesLabel(group, id)}: ${problem}`);
  };

  let ordered: SliceRecord[];
  let step: number;
  if (first.position === undefined || group.records.length === 1) {
    ordered = group.records;
    step = positive(first.ds.number('SpacingBetweenSlices')) ?? positive(first.ds.number('SliceThickness')) ?? 1;
  } else {
    const keyed = group.records.map((r) => ({ r, d: dot(r.position!, normal) }));
    keyed.sort((a, b) => a.d - b.d);
    ordered = keyed.map((k) => k.r);
    const n = keyed.length;
    const span = keyed[n - 1]!.d - keyed[0]!.d;
    step = span / (n - 1);
    for (let k = 1; k < n; k++) {
      const gap = keyed[k]!.d - keyed[k - 1]!.d;
      if (gap < DUPLICATE_TOLERANCE) {
        fail(`two slices at the same position ${keyed[k]!.d.toFixed(3)} mm along the normal (${describeSlice(keyed[k - 1]!.r)} and ${describeSlice(keyed[k]!.r)})`);
      }
    }
    const spacingTolerance = Math.max(0.02, 0.01 * step);
    for (let k = 1; k < n; k++) {
      const gap = keyed[k]!.d - keyed[k - 1]!.d;
      if (Math.abs(gap - step) > spacingTolerance) {
        fail(`uneven slice spacing (${gap.toFixed(4)} mm between slices ${k} and ${k + 1}, ${step.toFixed(4)} mm on average); missing slices or a variable-spacing acquisition`);
      }
    }
    const origin = keyed[0]!.r.position!;
    for (let k = 1; k < n; k++) {
      const p = keyed[k]!.r.position!;
      const along = keyed[k]!.d - keyed[0]!.d;
      const off = Math.hypot(p[0] - origin[0] - along * normal[0], p[1] - origin[1] - along * normal[1], p[2] - origin[2] - along * normal[2]);
      if (off > 0.02 + 1e-3 * Math.abs(along)) {
        const degrees = (Math.atan2(off, Math.abs(along)) * 180) / Math.PI;
        fail(`slices are not stacked along the slice normal (gantry tilt or shear of ${degrees.toFixed(2)}°); resample the series first`);
      }
    }
  }
  const origin: Vec3 = ordered[0]!.position ?? [0, 0, 0];
  const direction = [rowCos[0]!, colCos[0]!, normal[0], rowCos[1]!, colCos[1]!, normal[1], rowCos[2]!, colCos[2]!, normal[2]];
  return {
    ordered,
    geometry: { dims: [columns, rows, ordered.length], spacing: [pixelSpacing[1], pixelSpacing[0], step], origin, direction },
  };
}

function describeSlice(record: SliceRecord): string {
  const name = path.basename(record.ds.file);
  return record.format.frames > 1 ? `${name} frame ${record.frame + 1}` : name;
}

const DICOM_EXTRA_TAGS = [
  'PatientID',
  'PatientName',
  'PatientBirthDate',
  'PatientSex',
  'StudyDate',
  'StudyTime',
  'ReferringPhysicianName',
  'InstitutionName',
  'StudyID',
  'StudyDescription',
  'AccessionNumber',
  'SeriesDate',
  'SeriesTime',
  'SeriesNumber',
  'Manufacturer',
  'SeriesDescription',
  'ProtocolName',
  'SequenceName',
  'ScanningSequence',
  'ContrastBolusAgent',
  'RepetitionTime',
  'EchoTime',
  'InversionTime',
  'Rows',
  'Columns',
  'BitsAllocated',
  'BitsStored',
  'HighBit',
  'PixelRepresentation',
  'SamplesPerPixel',
  'PhotometricInterpretation',
  'PixelSpacing',
  'ImageOrientationPatient',
  'SliceThickness',
  'SpacingBetweenSlices',
  'WindowCenter',
  'WindowWidth',
  'TransferSyntaxUID',
] as const;

const NUMERIC_TAGS = new Set(['RepetitionTime', 'EchoTime', 'InversionTime', 'Rows', 'Columns', 'BitsAllocated', 'BitsStored', 'HighBit', 'PixelRepresentation', 'SamplesPerPixel', 'SeriesNumber', 'SliceThickness', 'SpacingBetweenSlices']);
const MULTI_NUMERIC_TAGS = new Set(['PixelSpacing', 'ImageOrientationPatient', 'WindowCenter', 'WindowWidth']);

function dicomExtra(ds: DicomDataset): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const keyword of DICOM_EXTRA_TAGS) {
    const value = MULTI_NUMERIC_TAGS.has(keyword) ? ds.numbers(keyword) : NUMERIC_TAGS.has(keyword) ? ds.number(keyword) : ds.string(keyword);
    if (value !== undefined) out[keyword] = value;
  }
  return out;
}

/** Decodes a placed group into one Volume: a single copy per frame, straight into the volume. */
async function buildVolume(placement: Placement, id: string): Promise<Volume> {
  const { ordered, geometry } = placement;
  const first = ordered[0]!;
  const format = first.format;
  const perFrame = valuesPerFrame(format);
  const stored = allocateFor(format, perFrame * ordered.length);
  const slotOf = new Map<SliceRecord, number>(ordered.map((r, k) => [r, k]));
  const files = [...new Set(ordered.map((r) => r.ds))];
  await Promise.all(
    files.map(async (ds) => {
      const records = ordered.filter((r) => r.ds === ds);
      const base = slotOf.get(records[0]!)!;
      // frames already in z order (the usual case) decode straight into the volume
      if (records.length === records[0]!.format.frames && records.every((r, i) => r.frame === i && slotOf.get(r) === base + i)) {
        await decodePixelsInto(ds, records[0]!.format, stored, base * perFrame);
        return;
      }
      const all = await decodePixels(ds, records[0]!.format);
      for (const r of records) stored.set(all.subarray(r.frame * perFrame, (r.frame + 1) * perFrame) as never, slotOf.get(r)! * perFrame);
    }),
  );

  const colour = format.samples === 3;
  let data: VoxelArray = stored;
  let slope = colour ? 1 : first.slope;
  let intercept = colour ? 0 : first.intercept;
  if (!colour && ordered.some((r) => r.slope !== first.slope || r.intercept !== first.intercept)) {
    // per-slice rescale cannot be one slope/intercept: store real values instead
    const real = new Float32Array(stored.length);
    ordered.forEach((r, k) => {
      for (let i = k * perFrame; i < (k + 1) * perFrame; i++) real[i] = stored[i]! * r.slope + r.intercept;
    });
    data = real;
    slope = 1;
    intercept = 0;
  }

  const ds = first.ds;
  const extra: Record<string, unknown> = {
    transferSyntax: format.transferSyntax,
    frameNumbers: ordered.map((r) => r.frame + 1),
    dicom: dicomExtra(ds),
  };
  if (colour) {
    extra.colour = true;
    // the colour space of the delivered samples: YBR_FULL_422 arrives expanded to YBR_FULL
    extra.photometric = format.photometric.startsWith('YBR_FULL') ? 'YBR_FULL' : 'RGB';
  }
  if (data !== stored) extra.perSliceRescale = true;
  return new Volume({
    geometry,
    data,
    slope,
    intercept,
    components: format.samples,
    meta: {
      id,
      description: ds.string('SeriesDescription') ?? '',
      modality: ds.string('Modality') ?? '',
      sources: [...new Set(ordered.map((r) => r.ds.file))],
      sopInstanceUids: ordered.map((r) => r.sopInstanceUid),
      sopClassUid: ds.string('SOPClassUID'),
      studyInstanceUid: ds.string('StudyInstanceUID'),
      frameOfReferenceUid: ds.string('FrameOfReferenceUID'),
      extra,
    },
  });
}

export interface AssembleResult {
  volumes: Volume[];
  /** series that could not be assembled, with the reason */
  errors: FileError[];
}

/**
 * Groups, orders and decodes slice records into volumes. A bad series is reported, not fatal
 * to others; `location` (what the user opened) is named when its files have no common folder.
 */
export async function assembleSeries(records: SliceRecord[], location = '(DICOM files)'): Promise<AssembleResult> {
  const groups = groupRecords(records);
  const ids = assignIds(groups);
  const volumes: Volume[] = [];
  const errors: FileError[] = [];
  for (const group of groups) {
    const id = ids.get(group)!;
    try {
      volumes.push(await buildVolume(placeGroup(group, id, location), id));
    } catch (err) {
      if (err instanceof FileError) errors.push(err);
      else throw err;
    }
  }
  return { volumes, errors };
}
