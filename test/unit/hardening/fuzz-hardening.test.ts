/**
 * The fuzz categories issue 14 adds (seeded, replayable): declared-size bombs, FIFOs and
 * symlinks in study folders, degenerate geometry, prototype keys in requests. Each probe must
 * load correctly or be refused with a FileError/UserError naming the file, within its time
 * limit; none may hang, allocate what the header claims, read outside the roots, or pollute a
 * prototype. The whole file has a budget (BUDGET_MS) it must finish within.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { API_METHODS, validateRequest } from '../../../main/core/api.ts';
import { UserError } from '../../../main/core/errors.ts';
import { encodeNifti, readNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { ReadRoots } from '../../../main/core/read-roots.ts';
import { withReadScope } from '../../../main/core/util/fs.ts';
import { MEMORY_LIMIT_ENV } from '../../../main/core/util/limits.ts';
import { mulberry32 } from '../../../main/core/util/random.ts';

const SEED = 20261204;
const BUDGET_MS = 90_000;
const PROBE_LIMIT_MS = 5000;
const began = performance.now();
const tmp = mkdtempSync(join(tmpdir(), 'fuzz-hardening-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  console.log(`hardening fuzz: ${((performance.now() - began) / 1000).toFixed(1)} s of a ${BUDGET_MS / 1000} s budget`);
  expect(performance.now() - began).toBeLessThan(BUDGET_MS);
});

const within = <T>(promise: Promise<T>, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${PROBE_LIMIT_MS} ms`)), PROBE_LIMIT_MS).unref())]);

/** loaded, or refused the way the app refuses files: anything else is a failure */
async function outcome(run: () => Promise<unknown>, what: string): Promise<'loaded' | 'refused'> {
  try {
    await within(run(), what);
    return 'loaded';
  } catch (err) {
    if (err instanceof UserError) return 'refused';
    throw new Error(`${what}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
}

function smallNifti(patch: (view: DataView) => void, body?: Buffer): Buffer {
  const volume = new Volume({
    geometry: { dims: [4, 4, 4], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data: new Int16Array(64).map((_, i) => i),
    meta: { id: 'v', description: '', modality: '', sources: [] },
  });
  const { header, data } = encodeNifti(volume);
  patch(new DataView(header.buffer, header.byteOffset, header.byteLength));
  return Buffer.concat([header, body ?? data]);
}

describe('hardening fuzz', () => {
  it('declared-size bombs: 60 headers claiming up to 32767³ voxels are refused before allocating', async () => {
    const random = mulberry32(SEED);
    process.env[MEMORY_LIMIT_ENV] = '64M';
    const results = { loaded: 0, refused: 0 };
    const before = process.memoryUsage().rss;
    try {
      for (let n = 0; n < 60; n++) {
        const dims = [0, 1, 2].map(() => 1 + Math.floor(random() ** 3 * 32767));
        const bitpix = [8, 16, 32, 64][Math.floor(random() * 4)]!;
        const datatype = { 8: 2, 16: 4, 32: 16, 64: 64 }[bitpix]!;
        const body = Buffer.alloc(Math.floor(random() * 200_000));
        const file = join(tmp, `bomb-${n}.nii${random() < 0.7 ? '.gz' : ''}`);
        const bytes = smallNifti((view) => {
          dims.forEach((d, i) => view.setInt16(42 + 2 * i, d, true));
          view.setInt16(70, datatype, true);
          view.setInt16(72, bitpix, true);
        }, body);
        writeFileSync(file, file.endsWith('.gz') ? gzipSync(bytes, { level: 1 }) : bytes);
        results[await outcome(() => readNifti(file), file)]++;
      }
    } finally {
      delete process.env[MEMORY_LIMIT_ENV];
    }
    console.log(`declared-size bombs: ${results.loaded} loaded, ${results.refused} refused`);
    expect(results.refused).toBeGreaterThan(50);
    expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(200);
  }, 60_000);

  it('FIFOs and symlinks in study folders: 24 folders answer in time and never read outside the root', async () => {
    const random = mulberry32(SEED + 1);
    const flair = resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz');
    const root = join(tmp, 'root');
    const outside = join(tmp, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    copyFileSync(flair, join(outside, 'secret_flair.nii.gz'));
    execFileSync('mkfifo', [join(outside, 'pipe')]);
    const roots = new ReadRoots([root]);
    const realRoot = realpathSync(root);
    const kinds = ['regular', 'fifo', 'fifo-link', 'outside-link', 'dangling', 'dev-null', 'outside-folder-link'] as const;
    const results = { loaded: 0, refused: 0 };
    for (let n = 0; n < 24; n++) {
      const folder = join(root, `case-${n}`);
      mkdirSync(folder);
      const picked = kinds.filter(() => random() < 0.4);
      if (!picked.length) picked.push(kinds[1 + Math.floor(random() * (kinds.length - 1))]!);
      for (const [i, kind] of picked.entries()) {
        const name = join(folder, `f${i}_flair.nii.gz`);
        if (kind === 'regular') copyFileSync(flair, name);
        else if (kind === 'fifo') execFileSync('mkfifo', [join(folder, `IM${i}.dcm`)]);
        else if (kind === 'fifo-link') symlinkSync(join(outside, 'pipe'), join(folder, `IM${i}.dcm`));
        else if (kind === 'outside-link') symlinkSync(join(outside, 'secret_flair.nii.gz'), name);
        else if (kind === 'dangling') symlinkSync(join(outside, 'missing.nii.gz'), name);
        else if (kind === 'dev-null') symlinkSync('/dev/null', join(folder, `IM${i}.dcm`));
        else symlinkSync(outside, join(folder, `sub${i}`));
      }
      let opened: Awaited<ReturnType<typeof openPath>> | undefined;
      results[
        await outcome(async () => {
          opened = await withReadScope(roots.scope('outside the root'), () => openPath(folder));
        }, folder)
      ]++;
      for (const study of opened?.studies ?? []) {
        for (const volume of Object.values(study.sequences)) {
          for (const source of volume!.meta.sources) expect(realpathSync(source).startsWith(realRoot), `${folder} read ${source}`).toBe(true);
        }
      }
    }
    console.log(`study folders with FIFOs and symlinks: ${results.loaded} loaded, ${results.refused} refused`);
    expect(results.loaded + results.refused).toBe(24);
  }, 60_000);

  it('degenerate geometry: 150 patched headers load with finite, positive geometry or are refused', async () => {
    const random = mulberry32(SEED + 2);
    const weird = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 1e-30, 3e38, -3e38, 1, -1, 0.5];
    const pick = () => weird[Math.floor(random() * weird.length)]!;
    const results = { loaded: 0, refused: 0 };
    for (let n = 0; n < 150; n++) {
      const file = join(tmp, `geometry-${n}.nii`);
      writeFileSync(
        file,
        smallNifti((view) => {
          view.setInt16(252, Math.floor(random() * 3), true);
          view.setInt16(254, Math.floor(random() * 3), true);
          for (let i = 0; i < 12; i++) if (random() < 0.3) view.setFloat32(280 + 4 * i, pick(), true);
          for (let i = 0; i < 4; i++) if (random() < 0.3) view.setFloat32(76 + 4 * i, pick(), true);
          for (let i = 0; i < 6; i++) if (random() < 0.2) view.setFloat32(256 + 4 * i, pick(), true);
          if (random() < 0.3) view.setFloat32(112, pick(), true);
          if (random() < 0.3) view.setFloat32(116, pick(), true);
        }),
      );
      let volumes: Volume[] = [];
      results[
        await outcome(async () => {
          volumes = (await readNifti(file)).volumes;
        }, file)
      ]++;
      for (const v of volumes) {
        expect(v.geometry.spacing.every((s) => Number.isFinite(s) && s > 0), `${file} spacing ${v.geometry.spacing}`).toBe(true);
        expect([...v.geometry.direction, ...v.geometry.origin].every(Number.isFinite), `${file} direction/origin`).toBe(true);
        for (let i = 0; i < v.data.length; i++) expect(Number.isFinite(v.data[i]! * v.slope + v.intercept), `${file} voxel ${i}`).toBe(true);
      }
    }
    console.log(`degenerate geometry: ${results.loaded} loaded, ${results.refused} refused`);
    expect(results.refused).toBeGreaterThan(0);
    expect(results.loaded).toBeGreaterThan(0);
  });

  it('prototype keys: 400 requests carrying __proto__, constructor or prototype anywhere are refused and pollute nothing', () => {
    const random = mulberry32(SEED + 3);
    const names = ['__proto__', 'constructor', 'prototype'];
    for (let n = 0; n < 400; n++) {
      const method = API_METHODS[Math.floor(random() * API_METHODS.length)]!;
      const name = names[Math.floor(random() * names.length)]!;
      const depth = Math.floor(random() * 3);
      // as JSON: JSON.parse makes "__proto__" an own key, as the server and IPC receive it
      let text = `{"${name}": {"polluted": true}}`;
      for (let d = 0; d < depth; d++) text = `{"studyId": "s", "roles": ${text}, "settings": ${text}}`;
      const problem = validateRequest(method, JSON.parse(text));
      expect(problem, `${method} ${text}`).not.toBeNull();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    }
  });
});
