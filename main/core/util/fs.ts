import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readlinkSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { FileError, UserError, errorMessage, fileSystemProblem } from '../errors.ts';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';

function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

type Data = string | Uint8Array | readonly Uint8Array[];

function chunksOf(data: Data): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return data;
}

/**
 * Why a write failed, naming the destination (not the temporary file, which is gone by then):
 * a full disk must read as such, never as a generic errno line.
 */
export function writeFailure(target: string, err: unknown): UserError {
  if (err instanceof UserError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ENOSPC') return new UserError(`no space left on device while writing ${target}`);
  if (code === 'EDQUOT') return new UserError(`disk quota exceeded while writing ${target}`);
  if (code === 'EACCES' || code === 'EPERM') return new UserError(`permission denied while writing ${target}`);
  if (code === 'EROFS') return new UserError(`read-only file system while writing ${target}`);
  if (code === 'EIO') return new UserError(`input/output error while writing ${target}`);
  return new UserError(`cannot write ${target}: ${code ? String(code) : errorMessage(err)}`);
}

/** write(2) may write less than asked (a nearly full disk does); a count of 0 means nothing more fits. */
const NO_PROGRESS = () => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });

async function writeAll(handle: Pick<FileHandle, 'write'>, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
    if (!(bytesWritten > 0)) throw NO_PROGRESS();
    offset += bytesWritten;
  }
}

function writeAllSync(fd: number, chunk: Uint8Array): void {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const written = writeSync(fd, chunk, offset, chunk.byteLength - offset);
    if (!(written > 0)) throw NO_PROGRESS();
    offset += written;
  }
}

/**
 * Makes the rename itself durable. Directories cannot be opened for syncing everywhere (Windows
 * refuses), and there the rename is as durable as the platform makes it.
 */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EACCES' && code !== 'EINVAL' && code !== 'ENOTSUP') throw err;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EACCES' && code !== 'EINVAL' && code !== 'ENOTSUP') throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface WriteOptions {
  /** permissions of a new file (before the umask): 0o600 for secrets; default 0o666 */
  mode?: number;
  /**
   * false: no fsync. Still atomic for readers and for a cancelled or failed write (the file
   * appears whole under its name or not at all); only a power loss may lose it. For caches of
   * what can be fetched again, where two fsyncs per file cost more than the download (155 PACS
   * instances: 0.8–2 s of fsyncs on a busy disk, against 0.1 s of transfer).
   */
  durable?: boolean;
}

/**
 * The one way the app writes a file (masks, reports, checkpoints, settings, caches, models):
 * to a temporary file beside the target, every byte accounted for, flushed to the disk, then
 * renamed over the target and the directory entry flushed, so a reader, a crash or a full disk
 * never leaves a short file under the final name. On failure the temporary file is removed and
 * the error names the target.
 */
export async function writeFileAtomic(target: string, data: Data, options: WriteOptions = {}): Promise<void> {
  const tmp = tempPathFor(target);
  const durable = options.durable ?? true;
  let handle: FileHandle | undefined;
  try {
    await mkdir(dirname(target), { recursive: true });
    // 'wx': never follow a symlink someone planted under the temporary name
    handle = await open(tmp, 'wx', options.mode ?? 0o666);
    for (const chunk of chunksOf(data)) await writeAll(handle, chunk);
    if (durable) await handle.sync();
    const closing = handle;
    handle = undefined;
    await closing.close();
    await rename(tmp, target);
    if (durable) await syncDirectory(dirname(target));
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw writeFailure(target, err);
  }
}

/**
 * Puts a file's content at `target` without copying when the file system allows: a hard link
 * made under a temporary name and renamed over the target (the source's directory entry and
 * bytes are never touched), else a checked atomic copy. Used for study images that a reviewed
 * case shares with the study it came from.
 */
export async function linkOrCopyAtomic(source: string, target: string): Promise<'linked' | 'copied'> {
  const tmp = tempPathFor(target);
  try {
    await mkdir(dirname(target), { recursive: true });
    await link(source, tmp);
    await rename(tmp, target);
    await syncDirectory(dirname(target));
    return 'linked';
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    const code = (err as { code?: unknown }).code;
    // another file system, or one without hard links: copy
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK' && code !== 'EACCES') throw writeFailure(target, err);
  }
  await writeFileAtomic(target, await readRegularFile(source));
  return 'copied';
}

export function writeFileAtomicSync(target: string, data: Data): void {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    mkdirSync(dirname(target), { recursive: true });
    fd = openSync(tmp, 'wx');
    for (const chunk of chunksOf(data)) writeAllSync(fd, chunk);
    fsyncSync(fd);
    const closing = fd;
    fd = undefined;
    closeSync(closing);
    renameSync(tmp, target);
    syncDirectorySync(dirname(target));
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the write error is the one to report
      }
    }
    rmSync(tmp, { force: true });
    throw writeFailure(target, err);
  }
}

/** A FIFO, a device or a socket where a file was expected: refused, never taken for "not this format". */
export class NotRegularFileError extends FileError {}

function notRegular(path: string, info: Parameters<typeof kindOf>[0]): FileError {
  return info.isDirectory() ? new FileError(path, kindOf(info)) : new NotRegularFileError(path, kindOf(info));
}

/** What a non-regular file is, for the refusal message. */
function kindOf(info: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (info.isDirectory()) return 'is a directory, not a regular file';
  if (info.isFIFO()) return 'is a named pipe (FIFO), not a regular file';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'is a device, not a regular file';
  if (info.isSocket()) return 'is a socket, not a regular file';
  return 'is not a regular file';
}

/**
 * The folders a service call may read, as real paths, and how the user makes another one
 * readable. Plain data, so that a job carries it into its worker thread.
 */
export interface ReadScope {
  roots: string[];
  hint: string;
}

const readScope = new AsyncLocalStorage<ReadScope>();

/**
 * Runs `fn` (a service call, a job in its worker) so that every file it opens through
 * openForReading and friends is checked after opening, on where the descriptor really points:
 * the read roots then hold for every file a reader reaches (the DICOM files of a folder, a
 * checkpoint), not only for the path the request named, and a symlink swapped after the
 * request was checked cannot win.
 */
export function withReadScope<T>(scope: ReadScope | undefined, fn: () => T): T {
  return scope ? readScope.run(scope, fn) : fn();
}

/** The scope of the running call (a job host passes it on to its workers). */
export function currentReadScope(): ReadScope | undefined {
  return readScope.getStore();
}

/** Where an open descriptor really is: Linux names it exactly; elsewhere the path is resolved again. */
function realPathOfDescriptor(fd: number, path: string): string {
  if (process.platform === 'linux') {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // no /proc (a container without it): fall through
    }
  }
  return realpathSync.native(path);
}

export function isInsideFolder(folder: string, path: string): boolean {
  const inside = relative(folder, path);
  return inside === '' || (!inside.startsWith('..') && !isAbsolute(inside));
}

function checkScope(fd: number, path: string): void {
  const scope = readScope.getStore();
  if (!scope) return;
  const real = realPathOfDescriptor(fd, path);
  if (scope.roots.some((root) => isInsideFolder(root, real))) return;
  const where = real === resolve(path) ? '' : ` (it leads to ${real})`;
  throw new UserError(`refusing to read ${path}${where}: ${scope.hint}`);
}

// O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer forever, before any check can run
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * Opens a study, checkpoint or model for reading: only a regular file (after following
 * symlinks) is accepted, decided by fstat on the opened descriptor so nothing can be swapped in
 * between; FIFOs, devices and sockets are refused with a FileError instead of hanging a reader.
 */
export async function openForReading(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (err) {
    throw new FileError(path, fileSystemProblem(err));
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw notRegular(path, info);
    checkScope(handle.fd, path);
    return handle;
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err instanceof UserError ? err : new FileError(path, fileSystemProblem(err));
  }
}

/** readFile restricted to regular files (see openForReading). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await openForReading(path);
  try {
    return await readFile(handle);
  } catch (err) {
    throw new FileError(path, fileSystemProblem(err));
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The synchronous form, for readers that use descriptors (DICOM). Returns the descriptor. */
export function openForReadingSync(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    throw new FileError(path, fileSystemProblem(err));
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw notRegular(path, info);
    checkScope(fd, path);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err instanceof UserError ? err : new FileError(path, fileSystemProblem(err));
  }
}

/**
 * The first symbolic link on the way from `folder` down to `path` (`path` included), or null.
 * For folders the app itself writes into and serves (the export folder): a link planted there
 * would make a write land, or a download come from, outside it.
 */
export function symlinkBelow(folder: string, path: string): string | null {
  const root = resolve(folder);
  const inside = relative(root, resolve(path));
  if (inside.startsWith('..') || isAbsolute(inside)) return resolve(path);
  let current = root;
  for (const part of inside.split(/[\\/]/).filter(Boolean)) {
    current = join(current, part);
    try {
      if (lstatSync(current).isSymbolicLink()) return current;
    } catch {
      return null; // the rest does not exist yet
    }
  }
  return null;
}

/**
 * Puts a folder written under a temporary name (beside `target`, on the same file system) in
 * place as `target`, so a reader sees the old folder or the new one, never a mix: the folder
 * analogue of writeFileAtomic (a cohort's case outputs). rename(2) cannot replace a non-empty
 * folder, so an old `target` is first moved aside, then removed; a crash in between leaves no
 * `target` (the work is redone), never a half-written one. The files inside must have been
 * written (and flushed) with writeFileAtomic.
 */
export async function replaceDirectory(tempDir: string, target: string): Promise<void> {
  const parent = dirname(target);
  const asides: string[] = [];
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(tempDir, target);
        break;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        // another writer (a redone job) may be swapping the same folder: try again a few times
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 5) throw writeFailure(target, err);
        const aside = join(parent, `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.old`);
        try {
          await rename(target, aside);
          asides.push(aside);
        } catch (moveErr) {
          if ((moveErr as { code?: unknown }).code !== 'ENOENT') throw writeFailure(target, moveErr);
        }
      }
    }
    await syncDirectory(parent);
  } catch (err) {
    await rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  } finally {
    for (const aside of asides) await rm(aside, { recursive: true, force: true }).catch(() => undefined);
  }
}
