/**
 * Finding 12 of issue 14: DICOM nesting ≥ 10,000 levels gave "Maximum call stack size
 * exceeded" and a huge item length "invalid value for parameter 'maxPosition'"; both now give
 * the usual one-line "<file>: …" error.
 */
import { describe, expect, it } from 'vitest';
import { parseDicomBuffer } from '../../../main/core/io/dicom/dataset.ts';
import { FileError } from '../../../main/core/errors.ts';

const u16 = (v: number) => Buffer.from([v & 0xff, v >> 8]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
const tag = (group: number, element: number) => Buffer.concat([u16(group), u16(element)]);

/** Preamble, DICM and a meta group naming explicit VR little endian, then `body`. */
function part10(body: Buffer): Uint8Array {
  const syntax = Buffer.from('1.2.840.10008.1.2.1\0');
  const ts = Buffer.concat([tag(2, 0x10), Buffer.from('UI'), u16(syntax.length), syntax]);
  const length = Buffer.concat([tag(2, 0), Buffer.from('UL'), u16(4), u32(ts.length)]);
  return new Uint8Array(Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), length, ts, body]));
}

/** `levels` sequences each holding one undefined-length item holding the next. */
function nested(levels: number): Buffer {
  const open = Buffer.concat([tag(0x0008, 0x1115), Buffer.from('SQ'), u16(0), u32(0xffffffff), tag(0xfffe, 0xe000), u32(0xffffffff)]);
  const close = Buffer.concat([tag(0xfffe, 0xe00d), u32(0), tag(0xfffe, 0xe0dd), u32(0)]);
  return Buffer.concat([...new Array(levels).fill(open), ...new Array(levels).fill(close)]);
}

function expectOneLine(run: () => unknown, file: string, pattern: RegExp): void {
  let err: unknown;
  try {
    run();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FileError);
  const message = (err as Error).message;
  expect(message.startsWith(`${file}: `)).toBe(true);
  expect(message).not.toMatch(/\n/);
  expect(message).not.toMatch(/Maximum call stack|maxPosition/);
  expect(message).toMatch(pattern);
}

describe('DICOM structure errors are one line naming the file', () => {
  it('the control: a shallow nesting parses', () => {
    expect(parseDicomBuffer(part10(nested(3)), 'shallow.dcm')).toBeDefined();
  });

  it('10,000 nested sequences', () => {
    expectOneLine(() => parseDicomBuffer(part10(nested(10_000)), 'deep.dcm'), 'deep.dcm', /nested too deeply/);
  });

  it('an item length far beyond the end of the file', () => {
    const body = Buffer.concat([tag(0x0008, 0x1115), Buffer.from('SQ'), u16(0), u32(0xffffffff), tag(0xfffe, 0xe000), u32(0xfffffff0), Buffer.alloc(16)]);
    expectOneLine(() => parseDicomBuffer(part10(body), 'long.dcm'), 'long.dcm', /length runs past the end of the file|truncated/);
  });
});
