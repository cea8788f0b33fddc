/**
 * Binary frames for the WebSocket transport (browser mode): a message with typed arrays in it,
 * without base64. Layout: u32 LE header length · UTF-8 JSON header · zero padding to 8 bytes ·
 * each typed array's bytes, each starting on an 8-byte boundary. In the JSON, a typed array is
 * replaced by {"$ta": <constructor name>, "o": byteOffset, "n": length}.
 *
 * Free of Node and DOM imports: the renderer and the web server both use it.
 */
import { isPlainObject, own } from '../schema.ts';

const TYPED_ARRAYS = {
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
} as const;
type TypedArrayName = keyof typeof TYPED_ARRAYS;
type AnyTypedArray = InstanceType<(typeof TYPED_ARRAYS)[TypedArrayName]>;

const align8 = (n: number) => (n + 7) & ~7;

function typedArrayName(value: unknown): TypedArrayName | null {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return null;
  const name = value.constructor.name;
  // Node's Buffer is a Uint8Array subclass.
  if (name in TYPED_ARRAYS) return name as TypedArrayName;
  return value instanceof Uint8Array ? 'Uint8Array' : null;
}

export function encodeFrame(message: unknown): Uint8Array {
  const blobs: AnyTypedArray[] = [];
  let offset = 0;
  const header = JSON.stringify(message, function (this: unknown, _key, value: unknown) {
    const name = typedArrayName(value);
    if (!name) return value;
    const array = value as AnyTypedArray;
    const ref = { $ta: name, o: offset, n: array.length };
    blobs.push(array);
    offset += align8(array.byteLength);
    return ref;
  });
  const headerBytes = new TextEncoder().encode(header);
  const start = align8(4 + headerBytes.length);
  const frame = new Uint8Array(start + offset);
  new DataView(frame.buffer).setUint32(0, headerBytes.length, true);
  frame.set(headerBytes, 4);
  let at = start;
  for (const blob of blobs) {
    frame.set(new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength), at);
    at += align8(blob.byteLength);
  }
  return frame;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Typed arrays come back as views on the frame when it is 8-byte aligned (no copy), else copies. */
export function decodeFrame(bytes: Uint8Array): unknown {
  if (bytes.byteLength < 4) throw new FrameError('frame shorter than its header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true);
  if (4 + headerLength > bytes.byteLength) throw new FrameError('frame header runs past the end of the frame');
  const start = align8(4 + headerLength);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + headerLength));
  const aligned = bytes.byteOffset % 8 === 0;
  return JSON.parse(text, (_key, value: unknown) => {
    if (!isPlainObject(value) || typeof value.$ta !== 'string') return value;
    const ctor = (own(TYPED_ARRAYS, value.$ta) ? TYPED_ARRAYS[value.$ta as TypedArrayName] : undefined) as (new (buffer: ArrayBufferLike, offset: number, length: number) => AnyTypedArray) | undefined;
    const { o, n } = value;
    if (!ctor || !Number.isInteger(o) || !Number.isInteger(n) || (o as number) < 0 || (n as number) < 0) {
      throw new FrameError('frame holds a malformed array reference');
    }
    const bytesPer = (ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const begin = start + (o as number);
    const end = begin + (n as number) * bytesPer;
    if (end > bytes.byteLength) throw new FrameError('frame array runs past the end of the frame');
    if (aligned) return new ctor(bytes.buffer, bytes.byteOffset + begin, n as number);
    return new ctor(bytes.slice(begin, end).buffer, 0, n as number);
  });
}
