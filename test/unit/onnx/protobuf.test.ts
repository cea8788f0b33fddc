import { describe, expect, it } from 'vitest';
import { ProtoWriter, varintSize } from '../../../main/core/onnx/protobuf.ts';

const bytes = (w: ProtoWriter): number[] => [...w.finish()];

describe('ProtoWriter', () => {
  it('encodes varints as protobuf does', () => {
    const w = new ProtoWriter();
    w.varint(0);
    w.varint(1);
    w.varint(300);
    w.varint(2 ** 31); // above the 31-bit fast path
    expect(bytes(w)).toEqual([0, 1, 0xac, 0x02, 0x80, 0x80, 0x80, 0x80, 0x08]);
    expect([0, 127, 128, 300, 2 ** 31, 2 ** 40].map(varintSize)).toEqual([1, 1, 2, 2, 5, 6]);
  });

  it('encodes a negative int64 as ten bytes of two’s complement', () => {
    const w = new ProtoWriter();
    w.int(1, -1);
    expect(bytes(w)).toEqual([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  it('writes tags, fixed32 floats, strings and nested messages with their lengths', () => {
    const w = new ProtoWriter();
    w.float(2, 1.5);
    w.string(1, 'ab');
    w.message(7, (m) => m.int(1, 150));
    expect(bytes(w)).toEqual([0x15, 0, 0, 0xc0, 0x3f, 0x0a, 2, 0x61, 0x62, 0x3a, 3, 0x08, 0x96, 0x01]);
  });

  it('grows its buffer for large payloads', () => {
    const w = new ProtoWriter();
    const payload = new Uint8Array(10_000).fill(7);
    w.bytes(9, payload);
    const out = w.finish();
    expect(out.length).toBe(1 + 2 + 10_000);
    expect(out[0]).toBe(0x4a);
    expect(out[out.length - 1]).toBe(7);
  });
});
