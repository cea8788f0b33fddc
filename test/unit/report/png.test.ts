/**
 * encodePng against the PNG specification, checked independently of node:zlib's CRC: every
 * chunk's CRC-32 (bitwise, as the specification's sample code computes it; IEND's is the
 * well-known AE426082), and the IDAT stream inflates to the filtered rows.
 */
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodePng } from '../../../main/core/report/png.ts';

function referenceCrc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('encodePng', () => {
  it('writes chunks with correct CRCs and rows that inflate back to the pixels', () => {
    const [width, height] = [5, 3];
    const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 53 + 7) % 256);
    const png = Buffer.from(encodePng(rgb, width, height));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chunks: { type: string; data: Buffer }[] = [];
    for (let at = 8; at < png.length; ) {
      const length = png.readUInt32BE(at);
      const typeAndData = png.subarray(at + 4, at + 8 + length);
      expect(png.readUInt32BE(at + 8 + length), `CRC of ${typeAndData.toString('latin1', 0, 4)}`).toBe(referenceCrc32(typeAndData));
      chunks.push({ type: typeAndData.toString('latin1', 0, 4), data: png.subarray(at + 8, at + 8 + length) });
      at += 12 + length;
    }
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(png.readUInt32BE(png.length - 4)).toBe(0xae426082);
    const ihdr = chunks[0]!.data;
    expect([ihdr.readUInt32BE(0), ihdr.readUInt32BE(4), ihdr[8], ihdr[9]]).toEqual([width, height, 8, 2]);
    const rows = inflateSync(chunks[1]!.data);
    for (let y = 0; y < height; y++) {
      expect(rows[y * (width * 3 + 1)], `filter byte of row ${y}`).toBe(0);
      expect([...rows.subarray(y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1))]).toEqual([...rgb.subarray(y * width * 3, (y + 1) * width * 3)]);
    }
  });
});
