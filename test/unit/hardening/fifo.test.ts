/**
 * Finding 4 of issue 14: FIFOs hung the readers (`info fifo.nii` never answered; four openStudy
 * calls on a FIFO stopped the server answering). Real FIFOs made with mkfifo; every reader must
 * refuse them at once, naming the file.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAppWiring } from '../../../main/app/ipc.ts';
import type { Reply } from '../../../main/core/rpc/channel.ts';
import { main } from '../../../main/cli/index.ts';
import { readNifti, readNiftiHeader } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { readCheckpoint } from '../../../main/core/model/checkpoint.ts';
import { openForReading } from '../../../main/core/util/fs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'fifo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fifo = (name: string) => {
  const path = join(tmp, name);
  execFileSync('mkfifo', [path]);
  return path;
};
const withinSeconds = <T>(seconds: number, promise: Promise<T>): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${seconds} s (hung on the FIFO)`)), seconds * 1000).unref())]);

const supported = process.platform !== 'win32';

describe.runIf(supported)('FIFOs are refused, not read', () => {
  it('sam2unet info fifo.nii answers at once with a non-zero status and names the file', async () => {
    const path = fifo('fifo.nii');
    let err = '';
    const status = await withinSeconds(5, main(['info', path], { interactive: false, stdout: () => undefined, stderr: (t) => void (err += t) }));
    expect(status).not.toBe(0);
    expect(err).toContain(`${path}: is a named pipe (FIFO), not a regular file`);
  });

  it('the NIfTI readers, the header reader, the checkpoint reader and openForReading refuse it', async () => {
    const nii = fifo('pipe.nii.gz');
    const pth = fifo('model.pth');
    await expect(withinSeconds(5, readNifti(nii))).rejects.toThrow(`${nii}: is a named pipe (FIFO), not a regular file`);
    await expect(withinSeconds(5, readNiftiHeader(nii))).rejects.toThrow(/named pipe/);
    await expect(withinSeconds(5, readCheckpoint(pth))).rejects.toThrow(`${pth}: is a named pipe (FIFO), not a regular file`);
    await expect(withinSeconds(5, openForReading(pth))).rejects.toThrow(/named pipe/);
  });

  it('a character device is refused the same way', async () => {
    await expect(withinSeconds(5, openForReading('/dev/zero'))).rejects.toThrow('/dev/zero: is a device, not a regular file');
  });

  it('a study folder holding a symlink to a FIFO answers at once, naming it', async () => {
    const folder = join(tmp, 'study');
    mkdirSync(folder);
    copyFileSync(resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz'), join(folder, 'case_flair.nii.gz'));
    symlinkSync(fifo('target-fifo'), join(folder, 'IM0001.dcm'));
    await expect(withinSeconds(10, openPath(folder))).rejects.toThrow(/IM0001\.dcm: is a named pipe/);
    let err = '';
    const status = await withinSeconds(10, main(['info', folder], { interactive: false, stdout: () => undefined, stderr: (t) => void (err += t) }));
    expect(status).not.toBe(0);
    expect(err).toMatch(/IM0001\.dcm: is a named pipe/);
  }, 30_000);

  it('four openStudy calls on a FIFO are refused and the app keeps answering others', async () => {
    const path = fifo('served.nii');
    const w = createAppWiring({ log: () => undefined, showSaveDialog: async () => null, showOpenDialog: async () => null, initialPaths: [tmp], settingsFile: join(tmp, 'settings.json') });
    try {
      const app = 'app://renderer/index.html';
      // the first call loads the engine's modules; what is measured is the answer while opens are pending
      await w.handleCall(app, 'capabilities', {});
      const opens = [1, 2, 3, 4].map(() => w.handleCall(app, 'openStudy', { path }) as Promise<Reply>);
      const started = performance.now();
      const capabilities = (await withinSeconds(5, w.handleCall(app, 'capabilities', {}))) as Reply;
      expect(capabilities.ok).toBe(true);
      expect(performance.now() - started).toBeLessThan(1000);
      for (const reply of await withinSeconds(20, Promise.all(opens))) {
        expect(reply.ok).toBe(false);
        expect(reply.ok ? '' : reply.error.message).toContain(`${path}: is a named pipe (FIFO), not a regular file`);
      }
    } finally {
      await w.service.dispose();
    }
  }, 60_000);
});
