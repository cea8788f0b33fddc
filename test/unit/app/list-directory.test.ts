// The file browser's service calls (issue 12): listDirectory lists only where the services may
// read (the read-roots rule, main/core/read-roots.ts), with study hints from names; openSampleStudy
// writes the sample phantom once into the data folder and opens it. Real files in a temp folder,
// fake ports (no reader or model).
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { dispatch } from '../../../main/core/rpc/api-channel.ts';
import { replyValidators } from '../../../main/core/api.ts';
import { ReadRoots } from '../../../main/core/read-roots.ts';
import { SAMPLE_NAME } from '../../../main/core/phantom/sample.ts';
import { fakePorts } from './fakes.ts';

describe('listDirectory and openSampleStudy', () => {
  let base: string;
  let root: string;
  let outside: string;
  let samples: string;
  const opened: string[] = [];

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'sam2unet-list-'));
    root = join(base, 'studies');
    outside = join(base, 'private');
    samples = join(base, 'data', 'samples');
    for (const dir of [root, outside, join(root, 'BraTS20_Training_009'), join(root, 'series'), join(root, 'plain'), join(root, '.hidden')]) mkdirSync(dir, { recursive: true });
    for (const s of ['t1', 't1ce', 't2', 'flair', 'seg']) writeFileSync(join(root, 'BraTS20_Training_009', `BraTS20_Training_009_${s}.nii.gz`), '');
    writeFileSync(join(root, 'series', 'IM0001.dcm'), '');
    writeFileSync(join(root, 'scan.nii'), '');
    writeFileSync(join(root, 'notes.txt'), '');
    writeFileSync(join(outside, 'id_rsa'), 'secret');
  });

  afterAll(() => rmSync(base, { recursive: true, force: true }));

  function service(options: { samplesDir?: string } = {}) {
    const roots = new ReadRoots([root, ...(options.samplesDir ? [options.samplesDir] : [])]);
    const ports = fakePorts();
    const openPath = ports.openPath;
    ports.openPath = async (path) => {
      opened.push(path as string);
      return openPath(path);
    };
    return new WorkstationService({
      mode: 'web',
      ports,
      checkReadable: (path) => roots.check(path, 'outside the folders this server may read'),
      browseRoots: () => [root],
      resolveExportPath: () => join(base, 'exports', 'x'),
      ...options,
    });
  }

  it('starts at the read roots and lists a root with study hints, folders first, hidden entries left out', async () => {
    const api = service();
    const places = await api.listDirectory({});
    // the root holds a NIfTI file, so it is marked as one
    expect(places).toEqual({ path: null, parent: null, entries: [{ name: root, path: root, kind: 'directory', study: 'nifti' }], truncated: false });
    const listing = await api.listDirectory({ path: root });
    expect(listing.path).toBe(root);
    // the root's parent may not be read: the browser goes back to the places instead
    expect(listing.parent).toBeNull();
    expect(listing.entries.map((e) => [e.name, e.kind, e.study])).toEqual([
      ['BraTS20_Training_009', 'directory', 'brats'],
      ['plain', 'directory', undefined],
      ['series', 'directory', 'dicom'],
      ['notes.txt', 'file', undefined],
      ['scan.nii', 'file', 'nifti'],
    ]);
    expect(listing.entries[0]!.path).toBe(join(root, 'BraTS20_Training_009'));
    expect(replyValidators.listDirectory!(listing, 'listDirectory')).toBeNull();
    const inside = await api.listDirectory({ path: join(root, 'series') });
    expect(inside.parent).toBe(root);
  });

  it('refuses to list anything outside the read roots, including by climbing out with ..', async () => {
    const api = service();
    await expect(api.listDirectory({ path: outside })).rejects.toThrow(/refusing to read .*private: outside the folders this server may read/);
    await expect(api.listDirectory({ path: join(root, '..', 'private') })).rejects.toThrow(/refusing to read/);
    await expect(api.listDirectory({ path: '/' })).rejects.toThrow(/refusing to read/);
    // over the boundary the refusal is a user error, and a malformed request never reaches the service
    const reply = await dispatch(api, 'listDirectory', { path: outside }, () => {});
    expect(reply).toMatchObject({ ok: false, error: { user: true } });
    const invalid = await dispatch(api, 'listDirectory', { path: outside, depth: 3 }, () => {});
    expect(invalid).toMatchObject({ ok: false, error: { name: 'InvalidRequest' } });
  });

  it('says what is wrong with a path that is not a folder', async () => {
    const api = service();
    await expect(api.listDirectory({ path: join(root, 'scan.nii') })).rejects.toThrow(/scan\.nii is a file, not a folder/);
    await expect(api.listDirectory({ path: join(root, 'gone') })).rejects.toThrow(/gone: no such file or folder/);
  });

  it('writes the sample study once into the data folder and opens it', async () => {
    const api = service({ samplesDir: samples });
    const first = await api.openSampleStudy();
    expect(first.studies).toHaveLength(1);
    const dir = join(samples, SAMPLE_NAME);
    expect(opened.at(-1)).toBe(dir);
    const flair = join(dir, `${SAMPLE_NAME}_flair.nii.gz`);
    const written = statSync(flair).mtimeMs;
    expect(statSync(join(dir, `${SAMPLE_NAME}_seg.nii.gz`)).size).toBeGreaterThan(1000);
    // the second time it is reused, not generated again
    await api.openSampleStudy();
    expect(statSync(flair).mtimeMs).toBe(written);
    await expect(service().openSampleStudy()).rejects.toThrow(/no data folder to write the sample study into/);
  });
});
