/**
 * Finding 6 of issue 14: tiny compressed files allocated gigabytes (a 5.2 MB .nii.gz declaring
 * 32767×32767×2 int16 took 5.2 GB; a 3.1 MB .pth whose data.pkl claims 3 GB took 6.3 GB before
 * being refused). Declared sizes are now checked before anything is inflated; the refusal names
 * the file, the size and the limit, and the memory the process holds barely moves.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { encodeNifti, readNifti } from '../../../main/core/io/nifti.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { readCheckpoint } from '../../../main/core/model/checkpoint.ts';
import { MEMORY_LIMIT_ENV, memoryLimit, parseByteSize } from '../../../main/core/util/limits.ts';
import { makeZip } from '../model/zip-helper.ts';

const tmp = mkdtempSync(join(tmpdir(), 'declared-size-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  delete process.env[MEMORY_LIMIT_ENV];
});

/** A .nii.gz whose header declares dims × int16 while holding only `bodyBytes` of (incompressible) voxels. */
function niftiBomb(name: string, dims: [number, number, number], bodyBytes: number): string {
  const volume = new Volume({ geometry: { dims: [2, 2, 2], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, data: new Int16Array(8), meta: { id: 'v', description: '', modality: '', sources: [] } });
  const { header } = encodeNifti(volume);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  for (let i = 0; i < 3; i++) view.setInt16(42 + 2 * i, dims[i]!, true);
  const path = join(tmp, name);
  writeFileSync(path, gzipSync(Buffer.concat([header, randomBytes(bodyBytes)]), { level: 1 }));
  return path;
}

/** A torch.save zip whose data.pkl entry declares `declared` bytes in the central directory. */
function checkpointBomb(name: string, declared: number, body: Uint8Array): string {
  const zip = Buffer.from(makeZip([{ name: 'archive/data.pkl', data: body }], { deflate: true }));
  const cd = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  zip.writeUInt32LE(declared, cd + 24);
  const path = join(tmp, name);
  writeFileSync(path, zip);
  return path;
}

describe('declared sizes are checked before anything is inflated', () => {
  it('a .nii.gz declaring more voxels than the memory limit is refused at once, naming file, size and limit', async () => {
    process.env[MEMORY_LIMIT_ENV] = '64M';
    // 4096×4096×4 int16 = 128 MB declared; ~300 KB on disk (so the deflate-ratio check alone lets it through)
    const path = niftiBomb('bomb.nii.gz', [4096, 4096, 4], 300_000);
    const before = process.memoryUsage().rss;
    const started = performance.now();
    await expect(readNifti(path)).rejects.toThrow(`${path}: the header (4096×4096×4, 16-bit voxels) declares 128.0 MB, more than the memory limit of 64.0 MB`);
    expect(performance.now() - started).toBeLessThan(2000);
    expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(64);
  });

  it('the CLI flag --max-memory sets the limit (and a bad size is refused)', async () => {
    const path = niftiBomb('bomb-cli.nii.gz', [4096, 4096, 4], 300_000);
    let err = '';
    const status = await main(['info', path, '--max-memory', '32M'], { interactive: false, stdout: () => undefined, stderr: (t) => void (err += t) });
    expect(status).not.toBe(0);
    expect(err).toContain('more than the memory limit of 32.0 MB');
    err = '';
    expect(await main(['info', path, '--max-memory', 'lots'], { interactive: false, stdout: () => undefined, stderr: (t) => void (err += t) })).not.toBe(0);
    expect(err).toMatch(/--max-memory lots: not a size/);
  });

  it('the default limit is a quarter of the physical memory; sizes parse with units', () => {
    expect(memoryLimit()).toBe(Math.floor(totalmem() * 0.25));
    expect(parseByteSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseByteSize('512mb')).toBe(512 * 2 ** 20);
    expect(parseByteSize('-1')).toBeNull();
  });

  it('a .pth whose data.pkl claims 3 GB from 3 KB is refused before inflating', async () => {
    const path = checkpointBomb('bomb.pth', 3_000_000_000, new Uint8Array(3000));
    const before = process.memoryUsage().rss;
    await expect(readCheckpoint(path)).rejects.toThrow(/bomb\.pth: .*data\.pkl declares 2\.8 GB, more than a checkpoint's pickle needs \(limit 256\.0 MB\)/);
    expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(64);
  });

  it('a zip entry declaring more than its deflate data can hold is refused', async () => {
    // 64 KB of deflate data cannot hold 200 MB (under the pickle cap and the memory limit: the ratio refuses it)
    const path = checkpointBomb('ratio.pth', 200 * 2 ** 20, new Uint8Array(randomBytes(64 * 1024)));
    await expect(readCheckpoint(path)).rejects.toThrow(/ratio\.pth: .*declares 200\.0 MB, more than [\d.]+ KB of deflate data can hold/);
  });
});
