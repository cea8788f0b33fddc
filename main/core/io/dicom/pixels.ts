/**
 * Pixel decoding: from a parsed dataset to stored values, frame after frame, per transfer
 * syntax. Output is what pydicom's pixel_array holds (frames, rows, columns, samples; samples
 * interleaved) with two deliberate normalisations: values are masked to BitsStored and
 * sign-extended when signed, and colour is always delivered as RGB.
 */
import dicomParser from 'dicom-parser';
import type { Element } from 'dicom-parser';
import type { VoxelArray } from '../volume.ts';
import { FileError } from '../../errors.ts';
import { TRANSFER_SYNTAX_NAMES, guard, readDeferredPixels, type DicomDataset } from './dataset.ts';
import {
  CodecError,
  checkFrameSize,
  checkRleHeader,
  j2kFrameHeader,
  jpegFrameHeader,
  decodeJpeg2000,
  decodeJpegBaseline,
  decodeJpegLossless,
  decodeJpegLs,
  decodeRle,
  type DecodedFrame,
  type FrameExpectation,
} from './codecs.ts';

/** A single file is refused beyond this many decoded bytes (typed arrays and sanity both end here). */
export const MAX_PIXEL_BYTES = 2 ** 31 - 1;

export interface PixelFormat {
  rows: number;
  columns: number;
  samples: number;
  frames: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  /** PhotometricInterpretation as stored in the file */
  photometric: string;
  planarConfiguration: number;
  transferSyntax: string;
}

type Kind = 'native' | 'rle' | 'jpeg' | 'jpeg-lossless' | 'jpeg-ls' | 'j2k';

const SYNTAX_KIND: Record<string, Kind> = {
  '1.2.840.10008.1.2': 'native',
  '1.2.840.10008.1.2.1': 'native',
  '1.2.840.10008.1.2.1.99': 'native',
  '1.2.840.10008.1.2.2': 'native',
  '1.2.840.10008.1.2.5': 'rle',
  '1.2.840.10008.1.2.4.50': 'jpeg',
  '1.2.840.10008.1.2.4.51': 'jpeg',
  '1.2.840.10008.1.2.4.57': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.70': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.80': 'jpeg-ls',
  '1.2.840.10008.1.2.4.81': 'jpeg-ls',
  '1.2.840.10008.1.2.4.90': 'j2k',
  '1.2.840.10008.1.2.4.91': 'j2k',
};
const BIG_ENDIAN = '1.2.840.10008.1.2.2';

export function isSupportedTransferSyntax(uid: string): boolean {
  return uid in SYNTAX_KIND;
}

function syntaxKind(ds: DicomDataset): Kind {
  const uid = ds.transferSyntax;
  const kind = SYNTAX_KIND[uid];
  if (!kind) throw new FileError(ds.file, `unsupported transfer syntax ${uid} (${TRANSFER_SYNTAX_NAMES[uid] ?? 'unknown'})`);
  return kind;
}

function requireInt(ds: DicomDataset, keyword: 'Rows' | 'Columns' | 'BitsAllocated', min: number, max: number): number {
  const value = ds.number(keyword);
  if (value === undefined) throw new FileError(ds.file, `missing required tag ${keyword}`);
  if (!Number.isInteger(value) || value < min || value > max) throw new FileError(ds.file, `invalid ${keyword} ${value}`);
  return value;
}

/** Reads and checks the image pixel module. Throws a FileError naming what is missing or wrong. */
export function pixelFormat(ds: DicomDataset): PixelFormat {
  if (!ds.element('PixelData')) throw new FileError(ds.file, 'missing required tag PixelData');
  const rows = requireInt(ds, 'Rows', 1, 65535);
  const columns = requireInt(ds, 'Columns', 1, 65535);
  const bitsAllocated = requireInt(ds, 'BitsAllocated', 1, 64);
  if (![1, 8, 16, 32].includes(bitsAllocated)) throw new FileError(ds.file, `unsupported BitsAllocated ${bitsAllocated}`);
  const bitsStored = ds.number('BitsStored') ?? bitsAllocated;
  if (!Number.isInteger(bitsStored) || bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new FileError(ds.file, `invalid BitsStored ${bitsStored} for BitsAllocated ${bitsAllocated}`);
  }
  const samples = ds.number('SamplesPerPixel') ?? 1;
  if (samples !== 1 && samples !== 3) throw new FileError(ds.file, `unsupported SamplesPerPixel ${samples}`);
  const framesValue = ds.number('NumberOfFrames') ?? 1;
  if (!Number.isInteger(framesValue) || framesValue < 0 || framesValue > 1_000_000) {
    throw new FileError(ds.file, `invalid NumberOfFrames ${framesValue}`);
  }
  const frames = Math.max(1, framesValue);
  const photometric = (ds.string('PhotometricInterpretation') ?? (samples === 3 ? 'RGB' : 'MONOCHROME2')).toUpperCase();
  if (samples === 3 && bitsAllocated === 1) throw new FileError(ds.file, 'colour image with BitsAllocated 1');
  const bytes = (rows * columns * samples * frames * bitsAllocated) / 8;
  if (bytes > MAX_PIXEL_BYTES) throw new FileError(ds.file, `image too large (${rows}×${columns}×${frames} frames × ${samples} samples)`);
  return {
    rows,
    columns,
    samples,
    frames,
    bitsAllocated,
    bitsStored,
    signed: ds.number('PixelRepresentation') === 1,
    photometric,
    planarConfiguration: ds.number('PlanarConfiguration') === 1 ? 1 : 0,
    transferSyntax: ds.transferSyntax,
  };
}

/**
 * Checks, from the header and the first compressed frame's own header only, that the pixel
 * data can deliver what the format promises: run before any volume is allocated, so a
 * corrupt Rows/Columns/NumberOfFrames is refused instead of allocating gigabytes.
 */
export function checkPixelData(ds: DicomDataset, format: PixelFormat): void {
  const kind = syntaxKind(ds);
  const element = ds.element('PixelData')!;
  // colour spaces this reader can describe (io/colour.ts); codecs report their own
  const convertible = kind === 'native' ? ['RGB', 'YBR_FULL', 'YBR_FULL_422'] : kind === 'rle' ? ['RGB', 'YBR_FULL'] : undefined;
  if (format.samples === 3 && convertible && !convertible.includes(format.photometric)) {
    throw new FileError(ds.file, `unsupported colour PhotometricInterpretation ${format.photometric} for ${TRANSFER_SYNTAX_NAMES[format.transferSyntax]}`);
  }
  if (kind === 'native') {
    if (element.encapsulatedPixelData) throw new FileError(ds.file, 'encapsulated pixel data in an uncompressed transfer syntax');
    const needed = expectedNativeBytes(format);
    const deferred = ds.deferredPixels;
    const available = deferred ? Math.min(deferred.length, deferred.available) : (ds.bytes('PixelData')?.length ?? 0);
    if (available < needed) {
      throw new FileError(ds.file, `truncated pixel data: ${available} bytes, expected ${needed} (${format.rows}×${format.columns}×${format.frames} frames × ${format.samples} samples × ${format.bitsAllocated} bits)`);
    }
    return;
  }
  if (format.bitsAllocated === 1) throw new FileError(ds.file, 'BitsAllocated 1 in a compressed transfer syntax');
  if (!element.encapsulatedPixelData) throw new FileError(ds.file, `pixel data is not encapsulated, as ${TRANSFER_SYNTAX_NAMES[format.transferSyntax]} requires`);
  const fragments = element.fragments ?? [];
  if (fragments.length === 0) throw new FileError(ds.file, 'encapsulated pixel data has no fragments');
  if (format.frames > fragments.length) throw new FileError(ds.file, `NumberOfFrames ${format.frames} but only ${fragments.length} compressed fragments`);
  const array = ds.raw.byteArray;
  const first = fragments[0]!;
  const head = array.subarray(first.position, Math.min(array.length, first.position + first.length));
  const expect = { rows: format.rows, columns: format.columns, samples: format.samples, bitsAllocated: format.bitsAllocated, signed: format.signed };
  try {
    if (kind === 'rle') checkRleHeader(head, expect);
    else if (kind === 'j2k') checkFrameSize(j2kFrameHeader(head), expect);
    else checkFrameSize(jpegFrameHeader(head), expect);
  } catch (err) {
    if (err instanceof CodecError) throw new FileError(ds.file, `frame 1: ${err.message}`);
    throw err;
  }
}

/** The stored-value array type for a format: BitsAllocated and PixelRepresentation decide. */
export function allocateFor(format: PixelFormat, length: number): VoxelArray {
  const { bitsAllocated, signed } = format;
  if (bitsAllocated <= 8) return signed && bitsAllocated === 8 ? new Int8Array(length) : new Uint8Array(length);
  if (bitsAllocated === 16) return signed ? new Int16Array(length) : new Uint16Array(length);
  return signed ? new Int32Array(length) : new Uint32Array(length);
}

export function valuesPerFrame(format: PixelFormat): number {
  return format.rows * format.columns * format.samples;
}

/** Decodes every frame of `ds` into a new array of stored values. */
export async function decodePixels(ds: DicomDataset, format = pixelFormat(ds)): Promise<VoxelArray> {
  const out = allocateFor(format, valuesPerFrame(format) * format.frames);
  await decodePixelsInto(ds, format, out, 0);
  return out;
}

/**
 * Decodes every frame of `ds` into `out`, starting at value index `offset` (frames follow each
 * other). `out` must be of the type allocateFor(format) gives.
 */
export async function decodePixelsInto(ds: DicomDataset, format: PixelFormat, out: VoxelArray, offset: number): Promise<void> {
  checkPixelData(ds, format);
  const kind = syntaxKind(ds);
  const element = ds.element('PixelData')!;
  const perFrame = valuesPerFrame(format);
  if (offset + perFrame * format.frames > out.length) throw new RangeError('output array too small for the decoded frames');
  const target = out.subarray(offset, offset + perFrame * format.frames) as VoxelArray;
  if (kind === 'native') {
    decodeNative(ds, format, target);
  } else {
    const frames = encapsulatedFrames(ds, element, format.frames);
    for (let f = 0; f < format.frames; f++) {
      const frameOut = target.subarray(f * perFrame, (f + 1) * perFrame) as VoxelArray;
      try {
        await decodeCompressedFrame(kind, frames[f]!, format, frameOut);
      } catch (err) {
        if (err instanceof CodecError) throw new FileError(ds.file, `frame ${f + 1}: ${err.message}`);
        throw err;
      }
    }
  }
  maskToBitsStored(target, format);
}

function expectedNativeBytes(format: PixelFormat): number {
  const values = format.rows * format.columns * format.frames;
  if (format.photometric === 'YBR_FULL_422' && format.samples === 3) return values * 2 * (format.bitsAllocated / 8);
  return Math.ceil((values * format.samples * format.bitsAllocated) / 8);
}

function decodeNative(ds: DicomDataset, format: PixelFormat, out: VoxelArray): void {
  // checkPixelData has made sure the bytes are there
  const needed = expectedNativeBytes(format);
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const is422 = format.samples === 3 && format.photometric === 'YBR_FULL_422';
  const rearranged = format.bitsAllocated === 1 || is422 || (format.samples === 3 && format.planarConfiguration === 1);
  let bytes: Uint8Array;
  if (ds.deferredPixels && !rearranged) {
    // the common case: one read from the file straight into the volume, no intermediate buffer
    readDeferredPixels(ds, outBytes.subarray(0, needed));
    bytes = outBytes;
  } else if (ds.deferredPixels) {
    bytes = new Uint8Array(needed);
    readDeferredPixels(ds, bytes);
  } else {
    bytes = ds.bytes('PixelData')!;
  }
  if (format.bitsAllocated === 1) {
    unpackBits(bytes, out as Uint8Array);
    return;
  }
  if (is422) {
    expand422(bytes.subarray(0, needed), outBytes, format);
  } else if (format.samples === 3 && format.planarConfiguration === 1) {
    deinterleavePlanar(bytes.subarray(0, needed), outBytes, format);
  } else if (bytes !== outBytes) {
    outBytes.set(bytes.subarray(0, needed));
  }
  if (format.transferSyntax === BIG_ENDIAN && format.bitsAllocated > 8) swapBytes(outBytes, format.bitsAllocated / 8);
}

/** 1-bit data (DICOM SEG): bits are packed least significant first, frames back to back. */
function unpackBits(bytes: Uint8Array, out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
}

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 2) {
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      const a = bytes[i]!;
      bytes[i] = bytes[i + 1]!;
      bytes[i + 1] = a;
    }
  } else {
    for (let i = 0; i + 3 < bytes.length; i += 4) {
      const a = bytes[i]!;
      const b = bytes[i + 1]!;
      bytes[i] = bytes[i + 3]!;
      bytes[i + 1] = bytes[i + 2]!;
      bytes[i + 2] = b;
      bytes[i + 3] = a;
    }
  }
}

/** PlanarConfiguration 1 (RRR…GGG…BBB per frame) → interleaved RGBRGB…. */
function deinterleavePlanar(bytes: Uint8Array, out: Uint8Array, format: PixelFormat): void {
  const width = format.bitsAllocated / 8;
  const pixels = format.rows * format.columns;
  const frameBytes = pixels * 3 * width;
  for (let f = 0; f < format.frames; f++) {
    const base = f * frameBytes;
    for (let s = 0; s < 3; s++) {
      const plane = base + s * pixels * width;
      for (let p = 0; p < pixels; p++) {
        for (let b = 0; b < width; b++) out[base + (p * 3 + s) * width + b] = bytes[plane + p * width + b]!;
      }
    }
  }
}

/** YBR_FULL_422 uncompressed: each pair of pixels is Y1 Y2 Cb Cr; expand to full YCbCr. */
function expand422(bytes: Uint8Array, out: Uint8Array, format: PixelFormat): void {
  if (format.bitsAllocated !== 8 || format.columns % 2 !== 0) {
    throw new RangeError('YBR_FULL_422 needs 8-bit samples and an even number of columns');
  }
  const pairs = (format.rows * format.columns * format.frames) / 2;
  for (let i = 0; i < pairs; i++) {
    const src = i * 4;
    const dst = i * 6;
    const cb = bytes[src + 2]!;
    const cr = bytes[src + 3]!;
    out[dst] = bytes[src]!;
    out[dst + 1] = cb;
    out[dst + 2] = cr;
    out[dst + 3] = bytes[src + 1]!;
    out[dst + 4] = cb;
    out[dst + 5] = cr;
  }
}

/** Keeps only the BitsStored low bits and sign-extends them for signed data, as pydicom does. */
function maskToBitsStored(data: VoxelArray, format: PixelFormat): void {
  const { bitsStored, bitsAllocated, signed } = format;
  if (bitsStored >= bitsAllocated || bitsAllocated === 1) return;
  const unsigned =
    bitsAllocated === 8
      ? new Uint8Array(data.buffer, data.byteOffset, data.length)
      : bitsAllocated === 16
        ? new Uint16Array(data.buffer, data.byteOffset, data.length)
        : new Uint32Array(data.buffer, data.byteOffset, data.length);
  if (signed) {
    const shift = 32 - bitsStored;
    for (let i = 0; i < data.length; i++) data[i] = (unsigned[i]! << shift) >> shift;
  } else {
    const mask = 2 ** bitsStored - 1;
    for (let i = 0; i < data.length; i++) unsigned[i] = (unsigned[i]! & mask) >>> 0;
  }
}

/** Splits encapsulated pixel data into one byte array per frame. */
function encapsulatedFrames(ds: DicomDataset, element: Element, frames: number): Uint8Array[] {
  const fragments = element.fragments!;
  return guard(ds.file, 'cannot read compressed frames', () => {
    const raw = ds.raw;
    if (frames === 1) return [dicomParser.readEncapsulatedPixelDataFromFragments(raw, element, 0, fragments.length) as Uint8Array];
    if (frames === fragments.length) {
      return fragments.map((_, f) => dicomParser.readEncapsulatedPixelDataFromFragments(raw, element, f, 1) as Uint8Array);
    }
    const table = element.basicOffsetTable?.length ? element.basicOffsetTable : dicomParser.createJPEGBasicOffsetTable(raw, element);
    if (table.length < frames) throw new FileError(ds.file, `found ${table.length} compressed frames, NumberOfFrames says ${frames}`);
    const out: Uint8Array[] = [];
    for (let f = 0; f < frames; f++) out.push(dicomParser.readEncapsulatedImageFrame(raw, element, f, table) as Uint8Array);
    return out;
  });
}

async function decodeCompressedFrame(kind: Kind, bytes: Uint8Array, format: PixelFormat, out: VoxelArray): Promise<void> {
  const expect: FrameExpectation = {
    rows: format.rows,
    columns: format.columns,
    samples: format.samples,
    bitsAllocated: format.bitsAllocated,
    signed: format.signed,
  };
  if (kind === 'rle') {
    const decoded = decodeRle(bytes, expect);
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(decoded.subarray(0, out.byteLength));
    return;
  }
  let frame: DecodedFrame;
  // YCbCr stays YCbCr (pydicom's rule); io/colour.ts converts where RGB is needed
  if (kind === 'jpeg') frame = await decodeJpegBaseline(bytes, expect, { keepColourSpace: format.photometric.startsWith('YBR_FULL') });
  else if (kind === 'jpeg-lossless') frame = await decodeJpegLossless(bytes, expect);
  else if (kind === 'jpeg-ls') frame = await decodeJpegLs(bytes, expect);
  else frame = await decodeJpeg2000(bytes, expect);
  if (frame.components !== format.samples) {
    throw new CodecError(`compressed frame has ${frame.components} components, header says SamplesPerPixel ${format.samples}`);
  }
  if (frame.data.length < out.length) throw new CodecError(`compressed frame holds ${frame.data.length} samples, expected ${out.length}`);
  // set() converts per element, so 8/16-bit codec output lands in any stored type
  if (frame.data.BYTES_PER_ELEMENT === out.BYTES_PER_ELEMENT || out.BYTES_PER_ELEMENT > 1) out.set(frame.data.subarray(0, out.length));
  else throw new CodecError(`${frame.bitsPerSample}-bit compressed samples do not fit BitsAllocated ${format.bitsAllocated}`);
}
