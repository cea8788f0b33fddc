/** A minimal zip writer for tests: stored or deflated entries, optionally with zip64 records. */
import * as zlib from 'node:zlib';

export interface ZipInput {
  name: string;
  data: Uint8Array;
}

export function makeZip(entries: ZipInput[], opts: { zip64?: boolean; deflate?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = opts.deflate ? zlib.deflateRawSync(e.data) : e.data;
    const crc = zlib.crc32(e.data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(8, opts.deflate ? 8 : 0, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, body.byteLength, true);
    local.setUint32(22, e.data.byteLength, true);
    local.setUint16(26, name.byteLength, true);
    parts.push(new Uint8Array(local.buffer), name, body);
    const extra = opts.zip64 ? new DataView(new ArrayBuffer(28)) : undefined;
    if (extra) {
      extra.setUint16(0, 0x0001, true);
      extra.setUint16(2, 24, true);
      extra.setBigUint64(4, BigInt(e.data.byteLength), true);
      extra.setBigUint64(12, BigInt(body.byteLength), true);
      extra.setBigUint64(20, BigInt(offset), true);
    }
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(4, 45, true);
    cd.setUint16(6, 45, true);
    cd.setUint16(10, opts.deflate ? 8 : 0, true);
    cd.setUint32(16, crc, true);
    cd.setUint32(20, opts.zip64 ? 0xffffffff : body.byteLength, true);
    cd.setUint32(24, opts.zip64 ? 0xffffffff : e.data.byteLength, true);
    cd.setUint16(28, name.byteLength, true);
    cd.setUint16(30, extra ? extra.byteLength : 0, true);
    cd.setUint32(42, opts.zip64 ? 0xffffffff : offset, true);
    central.push(new Uint8Array(cd.buffer), name);
    if (extra) central.push(new Uint8Array(extra.buffer));
    offset += 30 + name.byteLength + body.byteLength;
  }
  const cdOffset = offset;
  const cdSize = central.reduce((a, c) => a + c.byteLength, 0);
  const tail: Uint8Array[] = [];
  if (opts.zip64) {
    const rec = new DataView(new ArrayBuffer(56));
    rec.setUint32(0, 0x06064b50, true);
    rec.setBigUint64(4, 44n, true);
    rec.setUint16(12, 45, true);
    rec.setUint16(14, 45, true);
    rec.setBigUint64(24, BigInt(entries.length), true);
    rec.setBigUint64(32, BigInt(entries.length), true);
    rec.setBigUint64(40, BigInt(cdSize), true);
    rec.setBigUint64(48, BigInt(cdOffset), true);
    const loc = new DataView(new ArrayBuffer(20));
    loc.setUint32(0, 0x07064b50, true);
    loc.setBigUint64(8, BigInt(cdOffset + cdSize), true);
    loc.setUint32(16, 1, true);
    tail.push(new Uint8Array(rec.buffer), new Uint8Array(loc.buffer));
  }
  const eocd = new DataView(new ArrayBuffer(22));
  eocd.setUint32(0, 0x06054b50, true);
  eocd.setUint16(8, opts.zip64 ? 0xffff : entries.length, true);
  eocd.setUint16(10, opts.zip64 ? 0xffff : entries.length, true);
  eocd.setUint32(12, opts.zip64 ? 0xffffffff : cdSize, true);
  eocd.setUint32(16, opts.zip64 ? 0xffffffff : cdOffset, true);
  tail.push(new Uint8Array(eocd.buffer));
  const all = [...parts, ...central, ...tail];
  const out = new Uint8Array(all.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of all) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
