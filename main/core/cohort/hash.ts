/**
 * Content hashes that decide whether a cohort's study must be segmented again: the study's
 * files (every regular file under its folder, by relative path, size and bytes) and the model's
 * checkpoint. Contents, not dates: a copied or re-synchronised archive keeps its results.
 */
import { createHash, type Hash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { FileError, fileSystemProblem } from '../errors.ts';
import { openForReading } from '../util/fs.ts';

const CHUNK = 1 << 20;

async function hashInto(hash: Hash, path: string): Promise<number> {
  const handle = await openForReading(path);
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    let total = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, total);
      if (bytesRead === 0) return total;
      hash.update(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
  } catch (err) {
    throw err instanceof FileError ? err : new FileError(path, fileSystemProblem(err));
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** sha256 of one file, hex. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await hashInto(hash, path);
  return hash.digest('hex');
}

/**
 * The regular files under `path` (or `path` itself when it is a file), sorted by relative path.
 * Hidden entries are left out, as the readers leave them out; symlinked folders below the top
 * are not followed (they can loop), symlinked files are.
 */
export async function studyFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch((err: unknown) => {
    throw new FileError(path, fileSystemProblem(err));
  });
  if (!info.isDirectory()) return [path];
  const files: string[] = [];
  const pending = [path];
  while (pending.length) {
    const dir = pending.pop()!;
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
      throw new FileError(dir, `cannot list folder: ${fileSystemProblem(err)}`);
    });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile() || entry.isSymbolicLink()) files.push(full);
    }
  }
  return files.sort((a, b) => (relative(path, a) < relative(path, b) ? -1 : 1));
}

/** One hash over a study's files: each file's relative path, size and bytes, in path order. */
export async function hashStudyInputs(path: string): Promise<{ hash: string; files: number; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const files = await studyFiles(path);
  for (const file of files) {
    const name = relative(path, file) || '.';
    const inner = createHash('sha256');
    const size = await hashInto(inner, file);
    bytes += size;
    hash.update(`${name}\0${size}\0${inner.digest('hex')}\n`);
  }
  return { hash: hash.digest('hex'), files: files.length, bytes };
}
