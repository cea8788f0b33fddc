/**
 * Finding 2 of issue 14: the read roots were compared as text, so a symlink inside a root (a
 * folder, a file, a folder of symlinked DICOM files) opened studies outside it. Real symlinks,
 * real files, the app's wiring with its real ports (the reader runs in its worker thread).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAppWiring } from '../../../main/app/ipc.ts';
import type { Reply } from '../../../main/core/rpc/channel.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { ReadRoots, realPathOf } from '../../../main/core/read-roots.ts';
import { withReadScope } from '../../../main/core/util/fs.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const case001 = join(phantoms, 'BraTS20_Training_001');
const flair = join(case001, 'BraTS20_Training_001_flair.nii.gz');
const dicomDir = join(phantoms, 'BraTS20_Training_001_flair_dicom');

const tmp = mkdtempSync(join(tmpdir(), 'read-roots-'));
const root = join(tmp, 'root');
const outside = join(tmp, 'outside');
mkdirSync(root);
mkdirSync(outside);
copyFileSync(flair, join(outside, 'secret_flair.nii.gz'));
copyFileSync(flair, join(root, 'own_flair.nii.gz'));
symlinkSync(outside, join(root, 'linked-folder'));
symlinkSync(join(outside, 'secret_flair.nii.gz'), join(root, 'linked_flair.nii.gz'));
symlinkSync(case001, join(root, 'linked-case'));
mkdirSync(join(root, 'dicom-links'));
for (const name of readdirSync(dicomDir).slice(0, 40)) symlinkSync(join(dicomDir, name), join(root, 'dicom-links', name));
const settingsFile = join(tmp, 'settings.json');

const w = createAppWiring({ log: () => undefined, showSaveDialog: async () => null, showOpenDialog: async () => null, initialPaths: [root], settingsFile });
afterAll(async () => {
  await w.service.dispose();
  rmSync(tmp, { recursive: true, force: true });
});
const APP = 'app://renderer/index.html';
const openStudy = (path: string) => w.handleCall(APP, 'openStudy', { path }) as Promise<Reply>;
const refusal = (reply: Reply) => (reply.ok ? '(opened)' : reply.error.message);

describe('read roots decided on real paths', () => {
  it('a file inside the root opens (the control: the app really reads here)', async () => {
    const reply = await openStudy(join(root, 'own_flair.nii.gz'));
    expect(reply.ok, refusal(reply)).toBe(true);
  }, 60_000);

  it('a symlinked folder leading outside the root is refused', async () => {
    expect(refusal(await openStudy(join(root, 'linked-folder')))).toMatch(/^refusing to read .*linked-folder/);
    expect(refusal(await openStudy(join(root, 'linked-folder', 'secret_flair.nii.gz')))).toMatch(/^refusing to read/);
    expect(refusal(await openStudy(join(root, 'linked-case')))).toMatch(/^refusing to read/);
  }, 60_000);

  it('a symlinked file leading outside the root is refused', async () => {
    expect(refusal(await openStudy(join(root, 'linked_flair.nii.gz')))).toMatch(/^refusing to read .*linked_flair\.nii\.gz/);
  }, 60_000);

  it('a folder of symlinked DICOM files inside the root is refused at open time, file by file', async () => {
    const reply = await openStudy(join(root, 'dicom-links'));
    expect(reply.ok).toBe(false);
    expect(refusal(reply)).toMatch(/refusing to read .*dicom-links.*it leads to .*BraTS20_Training_001_flair_dicom/);
  }, 60_000);

  it('a symlink swapped in after the request was checked does not win (the check is repeated on the opened descriptor)', async () => {
    const roots = new ReadRoots([root]);
    const file = join(root, 'swapped_flair.nii.gz');
    copyFileSync(flair, file);
    roots.check(file); // the request's check passes
    unlinkSync(file);
    symlinkSync(join(outside, 'secret_flair.nii.gz'), file); // swapped before the reader opens it
    await expect(withReadScope(roots.scope('outside'), () => readNifti(file))).rejects.toThrow(/refusing to read .*swapped_flair.*it leads to .*outside.*secret_flair/);
    // without the swap the same read goes through
    unlinkSync(file);
    copyFileSync(flair, file);
    await expect(withReadScope(roots.scope('outside'), () => readNifti(file))).resolves.toBeDefined();
  });

  it('a root given through a symlink is compared by its real path; a new file below a symlinked parent is resolved', () => {
    const viaLink = join(tmp, 'root-link');
    symlinkSync(root, viaLink);
    const roots = new ReadRoots([viaLink]);
    expect(roots.allows(join(root, 'own_flair.nii.gz'))).toBe(true);
    expect(roots.allows(join(viaLink, 'linked-folder', 'x.nii'))).toBe(false);
    expect(realPathOf(join(root, 'linked-folder', 'not-yet', 'x.nii'))).toBe(join(realPathOf(outside), 'not-yet', 'x.nii'));
    expect(roots.list()).toEqual([viaLink]);
  });
});
