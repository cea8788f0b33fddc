/**
 * Finding 1 of issue 14: a full disk left truncated files that looked complete. Reproduced two
 * ways: an injected short/failed write (vi.mock of the file handle, any platform) and, as root on
 * Linux, a real 600 KB tmpfs with the CLI's `convert` and a NIfTI write.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const injected = vi.hoisted(() => ({ mode: 'none' as 'none' | 'short' | 'zero' | 'enospc' | 'syncfail', writes: 0, syncs: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const flags = args[1];
    if (injected.mode === 'none' || flags !== 'wx') return handle;
    const write = handle.write.bind(handle) as (b: Uint8Array, o: number, l: number) => Promise<{ bytesWritten: number }>;
    let written = 0;
    Object.assign(handle, {
      // a disk that takes 100 bytes, then half a buffer at a time, then nothing
      write: async (buffer: Uint8Array, offset = 0, length = buffer.byteLength - offset) => {
        injected.writes++;
        if (injected.mode === 'enospc' && written >= 100) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        if (injected.mode === 'zero' && written >= 100) return { bytesWritten: 0, buffer };
        const take = injected.mode === 'short' ? Math.max(1, Math.ceil(length / 2)) : Math.min(length, Math.max(0, 100 - written)) || length;
        const result = await write(buffer, offset, Math.min(take, length));
        written += result.bytesWritten;
        return result;
      },
      sync: async () => {
        injected.syncs++;
        if (injected.mode === 'syncfail') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      },
    });
    return handle;
  };
  return { ...real, open, default: { ...real, open } };
});

const { writeFileAtomic, writeFileAtomicSync } = await import('../../../main/core/util/fs.ts');
const { main } = await import('../../../main/cli/index.ts');
const { writeNifti, readNifti } = await import('../../../main/core/io/nifti.ts');

const tmp = mkdtempSync(join(tmpdir(), 'full-disk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.tmp'));
}

describe('writeFileAtomic on a disk that fills up (injected)', () => {
  it('a short write is continued until every byte is written', async () => {
    injected.mode = 'short';
    try {
      const target = join(tmp, 'short.bin');
      const data = new Uint8Array(10_000).map((_, i) => i % 251);
      await writeFileAtomic(target, [data.subarray(0, 3000), data.subarray(3000)]);
      expect(readFileSync(target)).toEqual(Buffer.from(data));
      expect(injected.writes).toBeGreaterThan(2);
    } finally {
      injected.mode = 'none';
    }
  });

  it('a write that makes no progress fails naming the target, keeps the old file and leaves no temporary file', async () => {
    const target = join(tmp, 'zero.bin');
    writeFileSync(target, 'previous contents');
    injected.mode = 'zero';
    try {
      await expect(writeFileAtomic(target, [new Uint8Array(5000)])).rejects.toThrow(`no space left on device while writing ${target}`);
    } finally {
      injected.mode = 'none';
    }
    expect(readFileSync(target, 'utf8')).toBe('previous contents');
    expect(leftovers(tmp)).toEqual([]);
  });

  it('ENOSPC from the write names the destination, not "write"', async () => {
    const target = join(tmp, 'enospc', 'mask.nii');
    injected.mode = 'enospc';
    try {
      const err = await writeFileAtomic(target, 'x'.repeat(5000)).catch((e: unknown) => e as Error);
      expect((err as Error).message).toBe(`no space left on device while writing ${target}`);
    } finally {
      injected.mode = 'none';
    }
    expect(existsSync(target)).toBe(false);
    expect(leftovers(join(tmp, 'enospc'))).toEqual([]);
  });

  it('data is flushed before the rename; a failed flush leaves nothing under the final name', async () => {
    const target = join(tmp, 'sync.json');
    injected.mode = 'syncfail';
    injected.syncs = 0;
    try {
      await expect(writeFileAtomic(target, '{"a":1}')).rejects.toThrow(`input/output error while writing ${target}`);
      expect(injected.syncs).toBe(1);
    } finally {
      injected.mode = 'none';
    }
    expect(existsSync(target)).toBe(false);
    expect(leftovers(tmp)).toEqual([]);
  });

  it('the CLI exits non-zero with the one-line message when a NIfTI write fails', async () => {
    const shared = resolve(process.cwd(), '../shared/data');
    const flair = join(shared, 'phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz');
    const out = join(tmp, 'cli', 'flair.nii');
    let err = '';
    injected.mode = 'zero';
    let status: number;
    try {
      status = await main(['convert', flair, out], { interactive: false, stdout: () => undefined, stderr: (t) => void (err += t) });
    } finally {
      injected.mode = 'none';
    }
    expect(status).not.toBe(0);
    expect(err).toContain(`no space left on device while writing ${out}`);
    expect(err).not.toMatch(/^wrote/m);
    expect(existsSync(out)).toBe(false);
  });
});

// ---- a real full disk: a 600 KB tmpfs (needs root and a kernel that lets us mount) ----
const mountPoint = join(tmp, 'small');
let mounted = false;
let refusal = '';
beforeAll(() => {
  mkdirSync(mountPoint, { recursive: true });
  if (process.platform !== 'linux') {
    refusal = 'not Linux';
    return;
  }
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=600k', 'tmpfs', mountPoint], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    refusal = String((err as { stderr?: Buffer }).stderr ?? err).trim();
  }
});
afterAll(() => {
  if (mounted) execFileSync('umount', [mountPoint]);
});

describe('a real 600 KB tmpfs', () => {
  it('convert of a 240×240×155 int16 FLAIR (17.8 MB raw) fails, exits non-zero and leaves no file', async (ctx) => {
    if (!mounted) {
      console.log(`skipped the tmpfs test: mount refused (${refusal})`);
      ctx.skip();
    }
    const flair = join(resolve(process.cwd(), '../shared/data'), 'phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz');
    const out = join(mountPoint, 'flair.nii');
    let err = '';
    let said = '';
    const status = await main(['convert', flair, out], { interactive: false, stdout: (t) => void (said += t), stderr: (t) => void (err += t) });
    expect(status).not.toBe(0);
    expect(err.trim()).toBe(`sam2unet: no space left on device while writing ${out}`);
    expect(said).not.toMatch(/wrote/);
    expect(readdirSync(mountPoint)).toEqual([]);
  });

  it('a compressed mask that does not fit leaves nothing; one that fits is complete and readable', async (ctx) => {
    if (!mounted) {
      console.log(`skipped the tmpfs test: mount refused (${refusal})`);
      ctx.skip();
    }
    const { Volume } = await import('../../../main/core/io/volume.ts');
    const dims: [number, number, number] = [64, 64, 64];
    const geometry = { dims, spacing: [1, 1, 1] as [number, number, number], origin: [0, 0, 0] as [number, number, number], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
    const meta = { id: 'v', description: '', modality: '', sources: [] };
    // random floats barely compress: ~1 MB of gzip for a 600 KB disk
    const big = new Volume({ geometry, data: new Float32Array(64 ** 3).map(() => Math.random()), meta });
    const target = join(mountPoint, 'big_pred.nii.gz');
    await expect(writeNifti(target, big)).rejects.toThrow(`no space left on device while writing ${target}`);
    expect(readdirSync(mountPoint)).toEqual([]);

    const small = new Volume({ geometry, data: new Uint8Array(64 ** 3).fill(1), meta });
    const fits = join(mountPoint, 'small_pred.nii.gz');
    await writeNifti(fits, small);
    expect((await readNifti(fits)).volumes[0]!.geometry.dims).toEqual(dims);
    expect(statSync(fits).size).toBeGreaterThan(0);
  });

  it('the synchronous writer fails the same way', (ctx) => {
    if (!mounted) {
      console.log(`skipped the tmpfs test: mount refused (${refusal})`);
      ctx.skip();
    }
    const target = join(mountPoint, 'sync.bin');
    expect(() => writeFileAtomicSync(target, new Uint8Array(2 << 20))).toThrow(`no space left on device while writing ${target}`);
    expect(existsSync(target)).toBe(false);
    expect(leftovers(mountPoint)).toEqual([]);
  });
});
