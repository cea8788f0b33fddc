/**
 * Decoders for compressed DICOM frames. The Cornerstone codecs are Emscripten modules
 * (CommonJS factories that find their .wasm beside themselves under Node); each is
 * instantiated lazily, once, and reused. RLE is simple enough to decode here.
 *
 * Every decoder first reads the frame's own header (JPEG SOF, JPEG 2000 SIZ) and checks it
 * against the DICOM Rows/Columns before handing the bytes to native code, so a corrupt or
 * hostile header cannot make a codec allocate gigabytes.
 */
import { createRequire } from 'node:module';
import { errorMessage } from '../../errors.ts';

const require = createRequire(import.meta.url);

/** A decoded frame: samples interleaved per pixel, little-endian host order. */
export interface DecodedFrame {
  width: number;
  height: number;
  components: number;
  bitsPerSample: number;
  /** 8-bit samples as Uint8Array, wider ones as Uint16Array/Int16Array (copied out of WASM memory) */
  data: Uint8Array | Uint16Array | Int16Array;
}

/** What the DICOM header says the frame must be. */
export interface FrameExpectation {
  rows: number;
  columns: number;
  samples: number;
  bitsAllocated: number;
  signed: boolean;
}

export class CodecError extends Error {
  override name = 'CodecError';
}

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  getDecodedBuffer(): Uint8Array;
}

interface EmscriptenModule {
  getExceptionMessage?: (pointer: number) => string;
  [decoderClass: string]: unknown;
}

type Factory = (options?: Record<string, unknown>) => Promise<EmscriptenModule>;

interface LazyCodec {
  module: string;
  decoderClass: string;
  promise?: Promise<{ module: EmscriptenModule; decoder: WasmDecoder }>;
}

const CODECS = {
  jpeg: { module: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs', decoderClass: 'JPEGDecoder' },
  jpegls: { module: '@cornerstonejs/codec-charls/decodewasmjs', decoderClass: 'JpegLSDecoder' },
  j2k: { module: '@cornerstonejs/codec-openjpeg/decodewasmjs', decoderClass: 'J2KDecoder' },
} satisfies Record<string, LazyCodec>;

const instances = new Map<keyof typeof CODECS, Promise<{ module: EmscriptenModule; decoder: WasmDecoder }>>();

function codec(name: keyof typeof CODECS): Promise<{ module: EmscriptenModule; decoder: WasmDecoder }> {
  let instance = instances.get(name);
  if (!instance) {
    const { module: id, decoderClass } = CODECS[name];
    instance = (async () => {
      const factory = require(id) as Factory;
      // the codecs log progress on stdout; a library must stay quiet
      const module = await factory({ print: () => {}, printErr: () => {} });
      const DecoderClass = module[decoderClass] as new () => WasmDecoder;
      return { module, decoder: new DecoderClass() };
    })();
    // a failed initialisation must not poison later attempts
    instance.catch(() => instances.delete(name));
    instances.set(name, instance);
  }
  return instance;
}

/**
 * Runs one WASM decode. The decoders share one instance per codec; decoding is synchronous
 * inside, so concurrent callers never interleave between set-buffer and read-result.
 */
async function runWasm(name: keyof typeof CODECS, bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedFrame> {
  const { module, decoder } = await codec(name);
  let info: FrameInfo;
  let decoded: Uint8Array;
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    info = decoder.getFrameInfo();
    decoded = decoder.getDecodedBuffer();
  } catch (err) {
    // Emscripten throws bare numbers (exception pointers); only some codecs can name them
    const message =
      typeof err === 'number' ? (module.getExceptionMessage?.(err) ?? `corrupt compressed data (codec error ${err})`) : errorMessage(err);
    throw new CodecError(`${name} decoder failed: ${message}`);
  }
  const bytesPerSample = info.bitsPerSample <= 8 ? 1 : 2;
  const expectedBytes = info.width * info.height * info.componentCount * bytesPerSample;
  if (info.width !== expect.columns || info.height !== expect.rows) {
    throw new CodecError(`compressed frame is ${info.width}×${info.height}, header says ${expect.columns}×${expect.rows}`);
  }
  if (decoded.length < expectedBytes) throw new CodecError(`decoder returned ${decoded.length} bytes, expected ${expectedBytes}`);
  const copy = decoded.slice(0, expectedBytes);
  let data: DecodedFrame['data'] = copy;
  if (bytesPerSample === 2) {
    const signed = info.isSigned ?? expect.signed;
    data = signed ? new Int16Array(copy.buffer, 0, expectedBytes / 2) : new Uint16Array(copy.buffer, 0, expectedBytes / 2);
  }
  return { width: info.width, height: info.height, components: info.componentCount, bitsPerSample: info.bitsPerSample, data };
}

/** Reads width, height, precision and component count from a JPEG (incl. lossless and JPEG-LS) SOF marker. */
export function jpegFrameHeader(bytes: Uint8Array): { width: number; height: number; precision: number; components: number } {
  let p = 0;
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new CodecError('not a JPEG stream (no SOI marker)');
  p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) throw new CodecError(`corrupt JPEG stream at byte ${p}`);
    const marker = bytes[p + 1]!;
    if (marker === 0xff) {
      p++;
      continue;
    }
    const length = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) {
      if (p + 10 > bytes.length) break;
      return {
        precision: bytes[p + 4]!,
        height: (bytes[p + 5]! << 8) | bytes[p + 6]!,
        width: (bytes[p + 7]! << 8) | bytes[p + 8]!,
        components: bytes[p + 9]!,
      };
    }
    if (marker === 0xda || marker === 0xd9) break;
    if (length < 2) throw new CodecError(`corrupt JPEG marker length at byte ${p}`);
    p += 2 + length;
  }
  throw new CodecError('JPEG stream has no frame header');
}

/** Reads the image size from a JPEG 2000 codestream's SIZ marker (inside a JP2 box or bare). */
export function j2kFrameHeader(bytes: Uint8Array): { width: number; height: number; components: number } {
  const limit = Math.min(bytes.length - 42, 1 << 16);
  for (let p = 0; p < limit; p++) {
    if (bytes[p] === 0xff && bytes[p + 1] === 0x4f && bytes[p + 2] === 0xff && bytes[p + 3] === 0x51) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + p + 4);
      const xsiz = view.getUint32(4);
      const ysiz = view.getUint32(8);
      const xosiz = view.getUint32(12);
      const yosiz = view.getUint32(16);
      return { width: xsiz - xosiz, height: ysiz - yosiz, components: view.getUint16(36) };
    }
  }
  throw new CodecError('JPEG 2000 stream has no SIZ marker');
}

/** Refuses a compressed frame whose own header disagrees with the DICOM header. */
export function checkFrameSize(found: { width: number; height: number; components: number }, expect: FrameExpectation): void {
  if (found.width !== expect.columns || found.height !== expect.rows) {
    throw new CodecError(`compressed frame is ${found.width}×${found.height}, header says ${expect.columns}×${expect.rows}`);
  }
  if (found.components !== expect.samples) {
    throw new CodecError(`compressed frame has ${found.components} components, header says SamplesPerPixel ${expect.samples}`);
  }
}

/**
 * `keepColourSpace`: the samples come out as the stream stores them (YCbCr stays YCbCr), as
 * DICOM's PhotometricInterpretation YBR_FULL(_422) describes them and as pydicom delivers them.
 */
export async function decodeJpegBaseline(bytes: Uint8Array, expect: FrameExpectation, opts: { keepColourSpace?: boolean } = {}): Promise<DecodedFrame> {
  const header = jpegFrameHeader(bytes);
  checkFrameSize(header, expect);
  if (header.precision > 8) throw new CodecError(`${header.precision}-bit JPEG (extended, 12-bit) is not supported`);
  return runWasm('jpeg', opts.keepColourSpace && header.components === 3 ? withoutColourTransform(bytes) : bytes, expect);
}

/**
 * libjpeg converts three-component streams to RGB whenever it takes them for YCbCr, and the
 * codec offers no switch. It takes a stream for RGB (no conversion) when it carries an Adobe
 * APP14 marker with transform 0 and no JFIF APP0 marker (JFIF implies YCbCr): so JFIF segments
 * are dropped, Adobe transform flags zeroed, and an Adobe segment added after SOI. Entropy-coded
 * data is untouched, so the samples are bit for bit what a non-converting decode gives.
 */
export function withoutColourTransform(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 2)];
  // APP14 "Adobe", version 100, flags0 0, flags1 0, transform 0
  parts.push(new Uint8Array([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]));
  let p = 2;
  while (p + 4 <= bytes.length && bytes[p] === 0xff) {
    const marker = bytes[p + 1]!;
    if (marker === 0xda) break; // start of scan: the rest is image data
    const length = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    const end = p + 2 + length;
    if (length < 2 || end > bytes.length) throw new CodecError(`corrupt JPEG marker length at byte ${p}`);
    const segment = bytes.subarray(p, end);
    const isJfif = marker === 0xe0 && length >= 7 && String.fromCharCode(...segment.subarray(4, 9)) === 'JFIF\0';
    const isAdobe = marker === 0xee && length >= 14 && String.fromCharCode(...segment.subarray(4, 9)) === 'Adobe';
    if (!isJfif && !isAdobe) parts.push(segment);
    p = end;
  }
  parts.push(bytes.subarray(p));
  return Buffer.concat(parts);
}

export async function decodeJpegLs(bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedFrame> {
  checkFrameSize(jpegFrameHeader(bytes), expect);
  return runWasm('jpegls', bytes, expect);
}

export async function decodeJpeg2000(bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedFrame> {
  checkFrameSize(j2kFrameHeader(bytes), expect);
  return runWasm('j2k', bytes, expect);
}

type LosslessDecoder = new () => { decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): ArrayLike<number> & { buffer: ArrayBufferLike } };
let losslessDecoder: LosslessDecoder | undefined;

export async function decodeJpegLossless(bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedFrame> {
  const header = jpegFrameHeader(bytes);
  checkFrameSize(header, expect);
  // the package ships no type declarations; its CommonJS build exports { Decoder }
  losslessDecoder ??= (require('jpeg-lossless-decoder-js') as { Decoder: LosslessDecoder }).Decoder;
  const Decoder = losslessDecoder;
  const bytesPerSample = expect.bitsAllocated <= 8 ? 1 : 2;
  let out: ArrayLike<number> & { buffer: ArrayBufferLike };
  try {
    // the decoder reads from an ArrayBuffer at an offset; give it a private copy so it never sees the rest of the file
    // (new Uint8Array(bytes) copies; Buffer#slice would not)
    const own = new Uint8Array(bytes);
    out = new Decoder().decode(own.buffer, 0, own.length, bytesPerSample);
  } catch (err) {
    throw new CodecError(`JPEG lossless decoder failed: ${errorMessage(err)}`);
  }
  const count = header.width * header.height * header.components;
  const raw = new Uint8Array(out.buffer as ArrayBuffer, 0, Math.min(out.buffer.byteLength, count * bytesPerSample));
  if (raw.length < count * bytesPerSample) throw new CodecError('JPEG lossless decoder returned too few samples');
  const copy = raw.slice();
  const data = bytesPerSample === 1 ? copy : expect.signed ? new Int16Array(copy.buffer) : new Uint16Array(copy.buffer);
  return { width: header.width, height: header.height, components: header.components, bitsPerSample: header.precision, data };
}

/** Checks the RLE header's segment count against the format; returns it. */
export function checkRleHeader(bytes: Uint8Array, expect: FrameExpectation): number {
  const segmentsNeeded = Math.ceil(expect.bitsAllocated / 8) * expect.samples;
  if (bytes.length < 64) throw new CodecError('RLE frame shorter than its 64-byte header');
  const segmentCount = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  if (segmentCount !== segmentsNeeded) throw new CodecError(`RLE frame has ${segmentCount} segments, expected ${segmentsNeeded}`);
  return segmentCount;
}

/**
 * RLE Lossless (PS3.5 Annex G): a 64-byte header with up to 15 segment offsets, one PackBits
 * segment per byte plane (most significant byte first, sample by sample). Writes the frame
 * as interleaved little-endian samples into `out` (length rows*columns*samples*bytesPerSample).
 */
export function decodeRle(bytes: Uint8Array, expect: FrameExpectation): Uint8Array {
  const bytesPerSample = Math.ceil(expect.bitsAllocated / 8);
  const pixels = expect.rows * expect.columns;
  const segmentsNeeded = checkRleHeader(bytes, expect);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const segmentCount = segmentsNeeded;
  const offsets: number[] = [];
  for (let s = 0; s < segmentCount; s++) offsets.push(view.getUint32(4 + 4 * s, true));
  offsets.push(bytes.length);
  const out = new Uint8Array(pixels * segmentsNeeded);
  const stride = segmentsNeeded;
  for (let s = 0; s < segmentCount; s++) {
    const start = offsets[s]!;
    const end = Math.min(offsets[s + 1]! > start ? offsets[s + 1]! : bytes.length, bytes.length);
    if (start < 64 || start >= bytes.length) throw new CodecError(`RLE segment ${s + 1} offset ${start} outside the frame`);
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // MSB segment first → little-endian position
    let o = sample * bytesPerSample + byteInSample;
    let written = 0;
    let p = start;
    while (p < end && written < pixels) {
      const n = bytes[p++]!;
      if (n < 128) {
        const count = Math.min(n + 1, pixels - written, end - p);
        for (let i = 0; i < count; i++, o += stride) out[o] = bytes[p + i]!;
        p += n + 1;
        written += count;
      } else if (n > 128) {
        const count = Math.min(257 - n, pixels - written);
        const value = p < end ? bytes[p]! : 0;
        p++;
        for (let i = 0; i < count; i++, o += stride) out[o] = value;
        written += count;
      }
    }
    if (written < pixels) throw new CodecError(`RLE segment ${s + 1} decodes to ${written} of ${pixels} bytes`);
  }
  return out;
}
