import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { readSafetensors } from '../../../main/core/model/safetensors.ts';
import {
  memorySource,
  parseTorchStateDict,
  readTorchPickle,
  readTorchStateDict,
  readZipDirectory,
  readZipEntry,
  TensorRef,
  unpickle,
} from '../../../main/core/model/torch-pickle.ts';
import type { StateDict } from '../../../main/core/model/tensor.ts';
import { makeZip, type ZipInput } from './zip-helper.ts';

const golden = resolve(process.cwd(), '../shared/golden');
const fixtures = resolve(process.cwd(), 'test/fixtures/checkpoints');
const expected = JSON.parse(readFileSync(resolve(fixtures, 'expected.json'), 'utf8')) as {
  tensors: Record<string, { shape: number[]; dtype: string; values: (number | string)[] }>;
};

/** Bit-exact comparison (Object.is: NaN equals NaN, -0 differs from 0); returns the keys that differ. */
function differing(a: StateDict, b: StateDict, rename: (k: string) => string = (k) => k): string[] {
  const bad: string[] = [];
  for (const [k, t] of b) {
    const u = a.get(rename(k));
    if (!u || u.shape.join() !== t.shape.join() || u.data.length !== t.data.length) {
      bad.push(k);
      continue;
    }
    for (let i = 0; i < t.data.length; i++) {
      if (!Object.is(u.data[i], t.data[i])) {
        bad.push(k);
        break;
      }
    }
  }
  return bad;
}

async function entriesOf(bytes: Uint8Array): Promise<ZipInput[]> {
  const src = memorySource(bytes);
  const dir = await readZipDirectory(src);
  const out: ZipInput[] = [];
  for (const e of dir.values()) out.push({ name: e.name, data: (await readZipEntry(src, e)).slice() });
  return out;
}

async function expectFileError(promise: Promise<unknown>, origin: string, pattern: RegExp): Promise<void> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err, `expected a FileError matching ${pattern}`).toBeInstanceOf(FileError);
  expect((err as FileError).file).toBe(origin);
  expect((err as FileError).message.startsWith(`${origin}: `)).toBe(true);
  expect((err as FileError).problem).toMatch(pattern);
}

describe('torch.save goldens, bit-exact against their safetensors twins', () => {
  it('hiera_mini/sam2_checkpoint.pt: {"model": state_dict} with non-trunk keys', async () => {
    const pt = await readTorchStateDict(resolve(golden, 'hiera_mini/sam2_checkpoint.pt'));
    const ref = await readSafetensors(resolve(golden, 'hiera_mini/trunk.safetensors'));
    expect(pt.location).toEqual(['model']);
    expect(ref.size).toBe(154);
    expect(differing(pt.tensors, ref)).toEqual([]);
    expect([...pt.tensors.keys()].filter((k) => !ref.has(k)).sort()).toEqual([
      'image_encoder.neck.convs.0.conv.weight', 'maskmem_tpos_enc', 'memory_encoder.out_proj.bias', 'sam_mask_decoder.iou_token.weight',
    ]);
    // float32 storages are zero-copy views of the file buffer (torch aligns them to 64 bytes)
    expect(new Set([...pt.tensors.values()].map((t) => t.data.buffer)).size).toBe(1);
  });

  it('sam2unet_mini/sam2unet.pth: bare state_dict with BatchNorm buffers', async () => {
    const pth = await readTorchStateDict(resolve(golden, 'sam2unet_mini/sam2unet.pth'));
    const ref = await readSafetensors(resolve(golden, 'sam2unet_mini/model.safetensors'));
    expect(pth.location).toEqual([]);
    expect(ref.size).toBe(548);
    expect(differing(pth.tensors, ref)).toEqual([]);
    const counters = [...pth.tensors.keys()].filter((k) => !ref.has(k));
    expect(counters.length).toBe(68);
    expect(counters.every((k) => k.endsWith('.num_batches_tracked'))).toBe(true);
    const nbt = pth.tensors.get('rfb1.branch0.0.bn.num_batches_tracked')!;
    expect(nbt.shape).toEqual([]);
    expect(pth.dtypes.get('rfb1.branch0.0.bn.num_batches_tracked')).toBe('int64');
    expect(Number.isInteger(nbt.data[0])).toBe(true);
  });

  it('reads files above the whole-file limit entry by entry, with the same result', async () => {
    const path = resolve(golden, 'sam2unet_mini/sam2unet.pth');
    const whole = await readTorchStateDict(path);
    const pieces = await readTorchStateDict(path, { wholeFileLimit: 0 });
    expect(differing(pieces.tensors, whole.tensors)).toEqual([]);
    expect(pieces.tensors.size).toBe(616);
    const trunc = join(tmpdir(), `torch-trunc-${process.pid}.pth`);
    writeFileSync(trunc, readFileSync(path).subarray(0, 3_000_000));
    await expectFileError(readTorchStateDict(trunc, { wholeFileLimit: 0 }), trunc, /corrupt torch\.save zip/);
  });

  it('reads only the tensors `include` selects', async () => {
    const pt = await readTorchStateDict(resolve(golden, 'hiera_mini/sam2_checkpoint.pt'), { include: (k) => k.startsWith('image_encoder.trunk.') });
    expect(pt.tensors.size).toBe(154);
    expect(pt.skipped.length).toBe(4);
  });

  it('parses the pickle alone into TensorRefs', async () => {
    const file = await readTorchPickle(resolve(golden, 'sam2unet_mini/sam2unet.pth'));
    expect(file.archive).toBe('sam2unet');
    const ref = (file.root as Map<string, unknown>).get('head.weight');
    expect(ref).toBeInstanceOf(TensorRef);
    expect((ref as TensorRef).shape).toEqual([1, 64, 1, 1]);
  });
});

describe('hand-made torch fixtures (test/fixtures/checkpoints, see README)', () => {
  const check = (tensors: StateDict, dtypes: Map<string, string>) => {
    expect([...tensors.keys()]).toEqual(Object.keys(expected.tensors));
    for (const [key, e] of Object.entries(expected.tensors)) {
      const t = tensors.get(key)!;
      expect(t.shape, key).toEqual(e.shape);
      expect(dtypes.get(key), key).toBe(e.dtype);
      const special: Record<string, number> = { nan: NaN, inf: Infinity, '-inf': -Infinity };
      const want = e.values.map((v) => (typeof v === 'string' ? special[v]! : Math.fround(v)));
      // every value is representable in float32 except float64 ones, which must round to nearest
      const got = Array.from(t.data);
      for (let i = 0; i < want.length; i++) {
        if (!Object.is(got[i], want[i])) throw new Error(`${key}[${i}]: ${got[i]} != ${want[i]}`);
      }
    }
  };

  for (const name of ['mixed_dtypes.pt', 'mixed_dtypes_proto4.pt', 'deflated.pt']) {
    it(`${name}: fp16, bf16, f64, int64, int32, uint8, bool, non-contiguous and offset views, Parameter, scalar, empty`, async () => {
      const sd = await readTorchStateDict(resolve(fixtures, name));
      expect(sd.location).toEqual([]);
      check(sd.tensors, sd.dtypes);
    });
  }

  it('wrapped_model.pt: {"model": ..., "epoch": 3}', async () => {
    const sd = await readTorchStateDict(resolve(fixtures, 'wrapped_model.pt'));
    expect(sd.location).toEqual(['model']);
    expect(sd.extras.get('epoch')).toBe(3);
    check(sd.tensors, sd.dtypes);
  });

  it('a zip64 archive (central directory and sizes in zip64 records) reads the same', async () => {
    const bytes = readFileSync(resolve(fixtures, 'mixed_dtypes.pt'));
    const zip64 = makeZip(await entriesOf(bytes), { zip64: true });
    const sd = await parseTorchStateDict(zip64, 'zip64.pt');
    check(sd.tensors, sd.dtypes);
  });

  it('refuses the legacy (pre-1.6) format and says how to convert', async () => {
    await expectFileError(readTorchStateDict(resolve(fixtures, 'legacy.pt')), resolve(fixtures, 'legacy.pt'), /legacy.*_use_new_zipfile_serialization=True/);
  });

  it('refuses a pickle that calls os.system, without running it', async () => {
    const path = resolve(fixtures, 'malicious.pt');
    await expectFileError(readTorchStateDict(path), path, /unsupported pickle global (posix|os)\.system/);
  });
});

describe('corrupt torch files give a FileError naming the file', () => {
  // a plain Uint8Array: Buffer#slice would return a view, not a copy
  const goldenPth = new Uint8Array(readFileSync(resolve(golden, 'sam2unet_mini/sam2unet.pth')));

  it('truncated zip (half the file)', async () => {
    await expectFileError(parseTorchStateDict(goldenPth.subarray(0, goldenPth.byteLength >> 1), 'half.pth'), 'half.pth', /end-of-central-directory/);
  });

  it('truncated zip (last bytes of the directory missing)', async () => {
    await expectFileError(parseTorchStateDict(goldenPth.subarray(0, goldenPth.byteLength - 30), 'cut.pth'), 'cut.pth', /corrupt torch\.save zip/);
  });

  it('flipped storage byte → CRC mismatch', async () => {
    const bytes = goldenPth.slice();
    bytes[200_000] ^= 0x40;
    await expectFileError(parseTorchStateDict(bytes, 'flip.pth'), 'flip.pth', /CRC mismatch/);
  });

  it('corrupted pickle opcode', async () => {
    const entries = await entriesOf(goldenPth);
    const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
    pkl.data[2] = 0xff; // right after PROTO 2
    await expectFileError(parseTorchStateDict(makeZip(entries), 'op.pth'), 'op.pth', /data\.pkl: unsupported pickle opcode 0xff at byte 2/);
  });

  it('truncated pickle', async () => {
    const entries = await entriesOf(goldenPth);
    const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
    pkl.data = pkl.data.subarray(0, 5000);
    await expectFileError(parseTorchStateDict(makeZip(entries), 'short.pth'), 'short.pth', /data\.pkl: (truncated pickle|stack underflow|MARK missing)/);
  });

  it('storage shorter than the pickle says', async () => {
    const entries = await entriesOf(goldenPth);
    const storage = entries.find((e) => e.name === 'sam2unet/data/0')!;
    storage.data = storage.data.subarray(0, storage.data.byteLength - 4);
    await expectFileError(parseTorchStateDict(makeZip(entries), 'store.pth'), 'store.pth', /storage 0 holds \d+ bytes/);
  });

  it('missing storage entry', async () => {
    const entries = (await entriesOf(goldenPth)).filter((e) => e.name !== 'sam2unet/data/5');
    await expectFileError(parseTorchStateDict(makeZip(entries), 'gone.pth'), 'gone.pth', /storage 5 is missing/);
  });

  it('no data.pkl', async () => {
    const entries = (await entriesOf(goldenPth)).filter((e) => !e.name.endsWith('data.pkl'));
    await expectFileError(parseTorchStateDict(makeZip(entries), 'nopkl.pth'), 'nopkl.pth', /expected one <archive>\/data\.pkl/);
  });

  it('unsupported compression method', async () => {
    const bytes = makeZip([{ name: 'a/data.pkl', data: new Uint8Array([0x80, 2, 0x7d, 0x2e]) }]);
    const view = new DataView(bytes.buffer);
    // central directory entry's method field (after the 30 + name + data local part)
    view.setUint16(30 + 10 + 4 + 10, 12, true);
    await expectFileError(parseTorchStateDict(bytes, 'bz.pth'), 'bz.pth', /compression method 12/);
  });

  it('not a zip, empty, missing', async () => {
    await expectFileError(parseTorchStateDict(new TextEncoder().encode('hello world'), 'txt.pth'), 'txt.pth', /not a torch\.save zip/);
    await expectFileError(parseTorchStateDict(new Uint8Array(0), 'empty.pth'), 'empty.pth', /not a torch\.save zip/);
    await expectFileError(readTorchStateDict('/nonexistent/x.pth'), '/nonexistent/x.pth', /no such file or directory/);
  });

  it('a pickle without tensors has no state_dict', async () => {
    const bytes = makeZip([{ name: 'a/data.pkl', data: new Uint8Array([0x80, 2, 0x7d, 0x2e]) }]);
    await expectFileError(parseTorchStateDict(bytes, 'nosd.pth'), 'nosd.pth', /no state_dict found/);
  });
});

describe('hand-written torch archives', () => {
  const enc = (t: string) => [...new TextEncoder().encode(t)];
  const str = (t: string) => [0x8c, t.length, ...enc(t)];
  /** {'w': tensor over storage 0 (four float32) with the given offset, size and stride} */
  const archive = (offset: number, size: number[], stride: number[]) => {
    const tuple = (xs: number[]) => [0x28, ...xs.flatMap((x) => [0x4b, x]), 0x74];
    const pkl = [
      0x80, 2, 0x7d, ...str('w'),
      0x63, ...enc('torch._utils\n_rebuild_tensor_v2\n'),
      0x28,
      0x28, ...str('storage'), 0x63, ...enc('torch\nFloatStorage\n'), ...str('0'), ...str('cpu'), 0x4b, 4, 0x74, 0x51,
      0x4b, offset, ...tuple(size), ...tuple(stride), 0x89,
      0x63, ...enc('collections\nOrderedDict\n'), 0x29, 0x52,
      0x74, 0x52, 0x73, 0x2e,
    ];
    return makeZip([
      { name: 'x/data.pkl', data: Uint8Array.from(pkl) },
      { name: 'x/data/0', data: new Uint8Array(Float32Array.from([10, 11, 12, 13]).buffer) },
      { name: 'x/version', data: Uint8Array.from(enc('3\n')) },
    ]);
  };

  it('gathers strided views and honours the storage offset', async () => {
    const sd = await parseTorchStateDict(archive(1, [2, 2], [1, 1]), 'views.pt');
    expect(Array.from(sd.tensors.get('w')!.data)).toEqual([11, 12, 12, 13]);
    const every2 = await parseTorchStateDict(archive(0, [2], [2]), 'views.pt');
    expect(Array.from(every2.tensors.get('w')!.data)).toEqual([10, 12]);
  });

  it('refuses a tensor that reaches past its storage', async () => {
    await expectFileError(parseTorchStateDict(archive(1, [4], [1]), 'past.pt'), 'past.pt', /"w" reaches element 5 of a 4-element storage/);
  });

  it('refuses a deflated entry that inflates beyond its declared size (zip bomb)', async () => {
    const bytes = makeZip([{ name: 'a/data.pkl', data: new Uint8Array(100_000) }], { deflate: true });
    const view = new DataView(bytes.buffer);
    const cd = view.getUint32(bytes.byteLength - 6, true);
    view.setUint32(cd + 24, 10, true); // uncompressed size in the central directory
    await expectFileError(parseTorchStateDict(bytes, 'bomb.pt'), 'bomb.pt', /cannot inflate/);
  });
});

describe('pickle VM', () => {
  const enc = (s: string) => [...new TextEncoder().encode(s)];
  const run = (bytes: number[]) => unpickle(Uint8Array.from(bytes));

  it('builds dicts, lists, tuples, ints, floats, strings', () => {
    // {'a': [1, -2, 3.5, 'x', None, True], 'b': (300, 2**40, -(2**70))}
    const p = [
      0x80, 2, 0x7d, 0x28,
      0x8c, 1, ...enc('a'), 0x5d, 0x28, 0x4b, 1, 0x4a, 0xfe, 0xff, 0xff, 0xff,
      0x47, 0x40, 0x0c, 0, 0, 0, 0, 0, 0, 0x8c, 1, ...enc('x'), 0x4e, 0x88, 0x65,
      0x8c, 1, ...enc('b'), 0x4d, 0x2c, 0x01, 0x8a, 6, 0, 0, 0, 0, 0, 1, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x87,
      0x75, 0x2e,
    ];
    const v = run(p) as Map<string, unknown>;
    expect(v.get('a')).toEqual([1, -2, 3.5, 'x', null, true]);
    expect(v.get('b')).toEqual([300, 2 ** 40, -(2n ** 70n)]);
    expect(Object.isFrozen(v.get('b'))).toBe(true);
  });

  it('memo: BINPUT/BINGET, MEMOIZE and LONG_BINGET', () => {
    const v = run([0x80, 4, 0x5d, 0x94, 0x8c, 1, ...enc('s'), 0x94, 0x61, 0x30, 0x6a, 0, 0, 0, 0, 0x68, 1, 0x86, 0x2e]) as unknown[];
    expect(v).toEqual([['s'], 's']);
    const w = run([0x80, 2, 0x8c, 1, ...enc('t'), 0x71, 9, 0x30, 0x68, 9, 0x2e]);
    expect(w).toBe('t');
  });

  it('refuses globals outside the whitelist, through GLOBAL and STACK_GLOBAL', () => {
    expect(() => run([0x80, 2, 0x63, ...enc('os\nsystem\n'), 0x2e])).toThrow(/unsupported pickle global os\.system/);
    expect(() => run([0x80, 4, 0x8c, 8, ...enc('builtins'), 0x8c, 4, ...enc('eval'), 0x93, 0x2e])).toThrow(/unsupported pickle global builtins\.eval/);
    expect(() => run([0x80, 2, 0x63, ...enc('torch\nload\n'), 0x2e])).toThrow(/unsupported pickle global torch\.load/);
  });

  it('refuses to call a storage type and to BUILD arbitrary objects', () => {
    expect(() => run([0x80, 2, 0x63, ...enc('torch\nFloatStorage\n'), 0x29, 0x52, 0x2e])).toThrow(/not callable/);
    expect(() => run([0x80, 2, 0x5d, 0x7d, 0x62, 0x2e])).toThrow(/BUILD on an unsupported object/);
  });

  it('reports underflow, bad memo, unknown opcodes and a missing STOP', () => {
    expect(() => run([0x80, 2, 0x61, 0x2e])).toThrow(/stack underflow/);
    expect(() => run([0x80, 2, 0x68, 7, 0x2e])).toThrow(/memo 7 not defined/);
    expect(() => run([0x80, 2, 0x69])).toThrow(/unsupported pickle opcode 0x69/);
    expect(() => run([0x80, 2, 0x7d])).toThrow(/truncated pickle/);
    expect(() => run([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f])).toThrow(/truncated pickle/);
  });
});
