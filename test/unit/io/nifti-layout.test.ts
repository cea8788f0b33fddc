/**
 * The NIfTI header layout (one field table per version, read and written through the same
 * table) is nibabel's header_dtype, and the writer's bytes are pinned: the header layout is one table per version that the reader
 * and the writer share (main/core/io/nifti.ts), and moving the writer onto it must not change a
 * byte. The expected headers (base64) and voxel-data hashes were produced by the writer as it
 * was before the table existed (commit 09104e8), for volumes that reach every branch of the
 * encoder: stored and converted types, scaling, RGB, an improper and a sheared direction,
 * the source's xform code, a long non-ASCII description.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NIFTI_LAYOUTS, encodeNifti, parseNiftiHeader, type WriteNiftiOptions } from '../../../main/core/io/nifti.ts';
import { Volume, type Geometry } from '../../../main/core/io/volume.ts';

const rot = (a: number) => [Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a), 0, 0, 0, 1];
const meta = (description: string, extra?: Record<string, unknown>) => ({ id: 'v', description, modality: '', sources: [], ...(extra ? { extra } : {}) });

function pinnedVolumes(): Record<string, { volume: Volume; options: WriteNiftiOptions }> {
  const axial: Geometry = { dims: [5, 4, 3], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  const improper: Geometry = { dims: [7, 6, 5], spacing: [0.8, 1.25, 3.3], origin: [-97.5, 120.25, -33], direction: rot(0.35).map((v, i) => (i % 3 === 2 ? -v : v)) };
  const sheared: Geometry = { dims: [4, 4, 2], spacing: [0.9, 0.9, 5], origin: [10.5, -20.25, 30], direction: [1, 0.05, 0, 0, 1, 0.02, 0, 0, 1] };
  return {
    int16Axial: { volume: new Volume({ geometry: axial, data: Int16Array.from({ length: 60 }, (_, i) => i * 37 - 900), meta: meta('T1') }), options: {} },
    scaledImproper: { volume: new Volume({ geometry: improper, data: Uint16Array.from({ length: 210 }, (_, i) => (i * 131) % 4000), slope: 0.5, intercept: -12.25, meta: meta('FLAIR', { sformCode: 4 }) }), options: {} },
    float64AsInt16: { volume: new Volume({ geometry: sheared, data: Float64Array.from({ length: 32 }, (_, i) => Math.sin(i) * 40000), meta: meta('ignored') }), options: { dtype: 'int16' as const, description: 'Réécrit — a description longer than seventy-nine characters, so that it is cut off at 79!', xformCode: 3 } },
    rgb: { volume: new Volume({ geometry: axial, data: Uint8Array.from({ length: 180 }, (_, i) => (i * 7) % 256), components: 3, meta: meta('colour', { qformCode: 2 }) }), options: {} },
    labelsFloat32: { volume: new Volume({ geometry: improper, data: Float32Array.from({ length: 210 }, (_, i) => [0, 1, 2, 4][i % 4]!), meta: meta('') }), options: { dtype: 'uint8' as const } },
  };
}

const PINNED: Record<string, { header: string; data: string }> = {
  int16Axial: {
    header: 'XAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMABQAEAAMAAQABAAEAAQAAAAAAAAAAAAAAAAAAAAQAEAAAAAAAgD8AAIA/AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACwQwAAgD8AAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFQxAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQABAAAAAAAAAAAAAACAPwAAAAAAAAAAAAAAAAAAgL8AAAAAAAAAAAAAAAAAAAAAAACAvwAAAAAAAAAAAAAAAAAAAAAAAIA/AAAAAAAAAAAAAAAAAAAAAAAAAABuKzEAAAAAAA==',
    data: '0d991dd7a5b9578fb4b915a6010125d1eac39425d640d649a7f1d1808f96ff36',
  },
  scaledImproper: {
    header: 'XAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMABwAGAAUAAQABAAEAAQAAAAAAAAAAAAAAAAAAAAACEAAAAAAAgL/NzEw/AACgPzMzU0AAAIA/AACAPwAAgD8AAIA/AACwQwAAAD8AAETBAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEZMQUlSAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAEAAAAAIAAAACAChd8vwAAw0IAgPDCAAAEwi9iQL9gdNs+AAAAAAAAw0Jxc4y+tUyWvwAAAAAAgPDCAAAAAAAAAAAzM1PAAAAEwgAAAAAAAAAAAAAAAAAAAABuKzEAAAAAAA==',
    data: '1f5696ede1c167f881069ad86dd7c888b3fa00c0017d30e6164ead51277b67b6',
  },
  float64AsInt16: {
    header: 'XAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMABAAEAAIAAQABAAEAAQAAAAAAAAAAAAAAAAAAAAQAEAAAAAAAgD9mZmY/ZmZmPwAAoEAAAIA/AACAPwAAgD8AAIA/AACwQwAAgD8AAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFI/P2NyaXQgPyBhIGRlc2NyaXB0aW9uIGxvbmdlciB0aGFuIHNldmVudHktbmluZSBjaGFyYWN0ZXJzLCBzbyB0aGF0IGl0IGlzIGN1dCAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwADAFAJAzm+2KO7EPp/PwAAKMEAAKJBAADwQWZmZr/sUTi9AAAAAAAAKMEAAAAAZmZmv83MzL0AAKJBAAAAAAAAAAAAAKBAAADwQQAAAAAAAAAAAAAAAAAAAABuKzEAAAAAAA==',
    data: '3970696ffc5c995a7c06c7635754d75ce1be6c4d4e4721f6e68512484aa6ed60',
  },
  rgb: {
    header: 'XAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMABQAEAAMAAQABAAEAAQAAAAAAAAAAAAAAAAAAAIAAGAAAAAAAgD8AAIA/AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACwQwAAgD8AAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGNvbG91cgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgACAAAAAAAAAAAAAACAPwAAAAAAAAAAAAAAAAAAgL8AAAAAAAAAAAAAAAAAAAAAAACAvwAAAAAAAAAAAAAAAAAAAAAAAIA/AAAAAAAAAAAAAAAAAAAAAAAAAABuKzEAAAAAAA==',
    data: 'bcffdce40d5a79f75756c72dbfc49f9eb50e96f9b0dc1119cfb29e6bb9f678a8',
  },
  labelsFloat32: {
    header: 'XAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMABwAGAAUAAQABAAEAAQAAAAAAAAAAAAAAAAAAAAIACAAAAAAAgL/NzEw/AACgPzMzU0AAAIA/AACAPwAAgD8AAIA/AACwQwAAgD8AAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQABAAAAAIAAAACAChd8vwAAw0IAgPDCAAAEwi9iQL9gdNs+AAAAAAAAw0Jxc4y+tUyWvwAAAAAAgPDCAAAAAAAAAAAzM1PAAAAEwgAAAAAAAAAAAAAAAAAAAABuKzEAAAAAAA==',
    data: '15f87c2731ad3b81c873e91e3d759fd1cc201f136238153738d351f72ed56817',
  },
};

/** The first differing byte, to say which header field moved. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('NIfTI-1 writer bytes', () => {
  for (const [name, { volume, options }] of Object.entries(pinnedVolumes())) {
    it(`writes the same header and voxel bytes as before the layout table (${name})`, () => {
      const { header, data } = encodeNifti(volume, options);
      const expected = Buffer.from(PINNED[name]!.header, 'base64');
      expect(firstDifference(header, expected), 'first differing header byte').toBe(-1);
      expect(createHash('sha256').update(data).digest('hex')).toBe(PINNED[name]!.data);
    });
  }
});

describe('NIfTI header field tables', () => {
  // written by test/fixtures/nifti/header_dtype.py from nibabel 5.0's nifti1/nifti2 header_dtype
  const nibabel = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../fixtures/nifti/header_dtype.json'), 'utf8')) as {
    layouts: Record<string, { size: number; fields: unknown[][] }>;
  };
  for (const version of [1, 2] as const) {
    it(`NIfTI-${version}: every field (name, offset, type, count) and the size are nibabel's`, () => {
      const ours = NIFTI_LAYOUTS[version];
      expect({ size: ours.size, fields: ours.fields.map((row) => [...row]) }).toEqual(nibabel.layouts[String(version)]);
    });
  }

  it('reads back through the same table what the writer wrote', () => {
    const { volume } = pinnedVolumes().scaledImproper!;
    const header = parseNiftiHeader(encodeNifti(volume, { description: 'round trip' }).header, 'written.nii');
    expect(header).toMatchObject({ version: 1, sizeofHdr: 348, dim: [3, 7, 6, 5, 1, 1, 1, 1], datatype: 512, bitpix: 16, voxOffset: 352, xyztUnits: 2, description: 'round trip', qformCode: 4, sformCode: 4 });
    expect(header.sclSlope).toBe(0.5);
    expect(header.sclInter).toBe(-12.25);
    expect(header.pixdim.slice(0, 4)).toEqual([-1, Math.fround(0.8), 1.25, Math.fround(3.3)]);
  });
});
