/**
 * The most memory one declared size may make the app allocate: a volume's voxels, a
 * checkpoint's entry, a pickle. A file's header says how big its contents are before anything
 * is inflated, so a 5 MB .nii.gz claiming 4 GB of voxels is refused at once instead of taking
 * the machine's memory for twenty seconds first.
 *
 * By default a quarter of the physical memory. `--max-memory <size>` (CLI and server) sets it through
 * the SAM2UNET_MAX_MEMORY environment variable, which worker threads inherit, so the readers
 * in the job workers apply the same limit.
 */
import { totalmem } from 'node:os';
import { FileError, UserError } from '../errors.ts';

export const MEMORY_LIMIT_ENV = 'SAM2UNET_MAX_MEMORY';
// a volume also needs its resampled and normalised copies and the model beside it
export const DEFAULT_MEMORY_FRACTION = 0.25;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 2 ** 10, m: 2 ** 20, mb: 2 ** 20, g: 2 ** 30, gb: 2 ** 30, t: 2 ** 40, tb: 2 ** 40 };

/** "8G", "512MB", "1.5g", "123456" → bytes; null when it is not a size. */
export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return null;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes > 0 ? bytes : null;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KB`;
  return `${bytes} bytes`;
}

/** The limit now: the environment's, else the default fraction of physical memory. */
export function memoryLimit(): number {
  const configured = process.env[MEMORY_LIMIT_ENV];
  const parsed = configured ? parseByteSize(configured) : null;
  return parsed ?? Math.floor(totalmem() * DEFAULT_MEMORY_FRACTION);
}

/** Sets the limit for this process and the workers it starts from now on. */
export function setMemoryLimit(text: string): void {
  if (parseByteSize(text) === null) throw new UserError(`--max-memory ${text}: not a size (examples: 8G, 512M, 1500000000)`);
  process.env[MEMORY_LIMIT_ENV] = text;
}

/** Refuses a declared size beyond the limit, naming the file, the size and the limit. */
export function checkDeclaredSize(file: string, what: string, bytes: number): void {
  const limit = memoryLimit();
  if (bytes > limit) {
    throw new FileError(file, `${what} declares ${formatBytes(bytes)}, more than the memory limit of ${formatBytes(limit)} (a quarter of the physical memory unless --max-memory says otherwise)`);
  }
}
