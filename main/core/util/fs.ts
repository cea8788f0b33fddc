import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { FileError, fileSystemProblem } from '../errors.ts';
import { dirname, basename, join } from 'node:path';

function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes to a temporary file beside the target, then renames it over the target, so a reader
 * (or a crash) never sees a half-written file.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    if (Array.isArray(data)) {
      const handle = await open(tmp, 'w');
      try {
        for (const chunk of data as readonly Uint8Array[]) await handle.write(chunk);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } else {
      await writeFile(tmp, data as string | Uint8Array);
    }
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** fs.open for reading, failing with a FileError that names the file and the reason. */
export async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new FileError(path, fileSystemProblem(err));
  }
}
