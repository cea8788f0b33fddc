/**
 * The local cache of instances fetched from a PACS, keyed by SOP Instance UID, laid out as
 * `<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` so that a cached study
 * or series is an ordinary DICOM folder the project's reader opens like any other.
 *
 * - Entries are written with writeFileAtomic (temp file, then rename): an entry exists whole or
 *   not at all, so a cancelled or failed fetch leaves no half-written instance under its name.
 *   They are not fsynced: a cache can be fetched again. An open from a PACS writes them after
 *   the study is open (retrieve.ts `keep`); `settled` waits for writes still going on.
 * - A size limit with least-recently-used eviction (last use = the file's mtime, touched on
 *   every hit, so the order survives restarts). Entries of a retrieval in progress are pinned:
 *   a study bigger than the limit is still fetched whole, then evicted first next time.
 * - Temporary files older than an hour (a process killed mid-write) are removed when the cache
 *   is first scanned; younger ones may belong to another process writing right now.
 */
import { readdir, rm, rmdir, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../util/fs.ts';
import { checkUid } from './dicomweb.ts';

export const DEFAULT_CACHE_BYTES = 4 * 2 ** 30;

/** The CLI's cache folder (the app keeps its own in its data folder): SAM2UNET_PACS_CACHE, else the user's cache folder. */
export function defaultCacheDir(): string {
  if (process.env.SAM2UNET_PACS_CACHE) return resolve(process.env.SAM2UNET_PACS_CACHE);
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) return join(process.env.LOCALAPPDATA, 'sam2unet-workstation', 'pacs-cache');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'sam2unet-workstation', 'pacs');
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sam2unet-workstation', 'pacs');
}

interface Entry {
  path: string;
  bytes: number;
  lastUsed: number;
}

const STALE_TEMP_MS = 60 * 60 * 1000;

export class InstanceCache {
  readonly root: string;
  readonly maxBytes: number;
  /** SOP Instance UID → entry, in least-recently-used-first order (a Map keeps insertion order) */
  #entries?: Map<string, Entry>;
  #scanning?: Promise<Map<string, Entry>>;
  #bytes = 0;
  readonly #pins = new Map<string, number>();
  /** file → its write in progress */
  readonly #writing = new Map<string, Promise<unknown>>();

  constructor(root: string, maxBytes = DEFAULT_CACHE_BYTES) {
    this.root = resolve(root);
    this.maxBytes = maxBytes;
  }

  /** Where an instance lives (or would): the UIDs are checked before they become path parts. */
  pathOf(studyUid: string, seriesUid: string, sopInstanceUid: string): string {
    return join(this.root, checkUid(studyUid, 'StudyInstanceUID'), checkUid(seriesUid, 'SeriesInstanceUID'), `${checkUid(sopInstanceUid, 'SOPInstanceUID')}.dcm`);
  }

  studyDir(studyUid: string): string {
    return join(this.root, checkUid(studyUid, 'StudyInstanceUID'));
  }

  seriesDir(studyUid: string, seriesUid: string): string {
    return join(this.studyDir(studyUid), checkUid(seriesUid, 'SeriesInstanceUID'));
  }

  async #index(): Promise<Map<string, Entry>> {
    if (this.#entries) return this.#entries;
    this.#scanning ??= this.#scan();
    return this.#scanning;
  }

  async #scan(): Promise<Map<string, Entry>> {
    const found: (Entry & { uid: string })[] = [];
    const now = Date.now();
    const walk = async (dir: string, depth: number) => {
      const names = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of names) {
        const path = join(dir, entry.name);
        if (entry.isDirectory() && depth < 2) await walk(path, depth + 1);
        else if (entry.isFile() && entry.name.endsWith('.tmp')) {
          const info = await stat(path).catch(() => null);
          if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(path, { force: true });
        } else if (entry.isFile() && depth === 2 && entry.name.endsWith('.dcm')) {
          const info = await stat(path).catch(() => null);
          if (info) found.push({ uid: entry.name.slice(0, -4), path, bytes: info.size, lastUsed: info.mtimeMs });
        }
      }
    };
    await walk(this.root, 0);
    found.sort((a, b) => a.lastUsed - b.lastUsed);
    const entries = new Map<string, Entry>();
    for (const { uid, ...entry } of found) {
      entries.set(uid, entry);
      this.#bytes += entry.bytes;
    }
    this.#entries = entries;
    return entries;
  }

  /** The cached file of an instance (marked as just used), or null. */
  async get(studyUid: string, seriesUid: string, sopInstanceUid: string): Promise<{ path: string; bytes: number } | null> {
    const entries = await this.#index();
    const path = this.pathOf(studyUid, seriesUid, sopInstanceUid);
    const entry = entries.get(sopInstanceUid);
    if (!entry || entry.path !== path) return null;
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) {
      // removed behind our back (another process evicted it)
      entries.delete(sopInstanceUid);
      this.#bytes -= entry.bytes;
      return null;
    }
    this.#touch(sopInstanceUid, entry);
    await utimes(path, new Date(), new Date()).catch(() => undefined);
    return { path, bytes: entry.bytes };
  }

  #touch(uid: string, entry: Entry): void {
    const entries = this.#entries!;
    entries.delete(uid);
    entry.lastUsed = Date.now();
    entries.set(uid, entry);
  }

  /** Stores an instance atomically, then evicts least-recently-used entries beyond the limit. */
  async put(studyUid: string, seriesUid: string, sopInstanceUid: string, bytes: Uint8Array): Promise<string> {
    const path = this.pathOf(studyUid, seriesUid, sopInstanceUid);
    const write = this.#put(path, sopInstanceUid, bytes);
    this.#writing.set(path, write);
    try {
      return await write;
    } finally {
      if (this.#writing.get(path) === write) this.#writing.delete(path);
    }
  }

  /** Resolves once the writes in progress under `dir` (default: the whole cache) are done, whatever their outcome. */
  async settled(dir = this.root): Promise<void> {
    const prefix = `${resolve(dir)}${sep}`;
    await Promise.allSettled([...this.#writing].filter(([path]) => path.startsWith(prefix)).map(([, write]) => write));
  }

  async #put(path: string, sopInstanceUid: string, bytes: Uint8Array): Promise<string> {
    const entries = await this.#index();
    // not fsynced: an entry lost to a power cut is fetched again (see WriteOptions.durable)
    await writeFileAtomic(path, bytes, { durable: false });
    const old = entries.get(sopInstanceUid);
    if (old) {
      this.#bytes -= old.bytes;
      if (old.path !== path) await rm(old.path, { force: true });
    }
    const entry = { path, bytes: bytes.byteLength, lastUsed: Date.now() };
    entries.delete(sopInstanceUid);
    entries.set(sopInstanceUid, entry);
    this.#bytes += entry.bytes;
    await this.evict();
    return path;
  }

  /** Keeps these instances from eviction until the returned function is called. */
  pin(sopInstanceUids: Iterable<string>): () => void {
    const uids = [...sopInstanceUids];
    for (const uid of uids) this.#pins.set(uid, (this.#pins.get(uid) ?? 0) + 1);
    return () => {
      for (const uid of uids) {
        const n = (this.#pins.get(uid) ?? 1) - 1;
        if (n > 0) this.#pins.set(uid, n);
        else this.#pins.delete(uid);
      }
    };
  }

  /**
   * The cached instances of a series that are really there (an entry removed behind our back,
   * by another process or by hand, is forgotten), marked as just used.
   */
  async seriesFiles(studyUid: string, seriesUid: string): Promise<{ uid: string; path: string; bytes: number }[]> {
    const entries = await this.#index();
    const prefix = `${this.seriesDir(studyUid, seriesUid)}/`;
    const found = [...entries].filter(([, entry]) => entry.path.startsWith(prefix));
    const now = new Date();
    // utimes both checks that the file is there and marks it used (all at once: one pool round trip each)
    const there = await Promise.all(found.map(([, entry]) => utimes(entry.path, now, now).then(() => true, () => false)));
    const present: { uid: string; path: string; bytes: number }[] = [];
    found.forEach(([uid, entry], i) => {
      if (there[i]) {
        this.#touch(uid, entry);
        present.push({ uid, path: entry.path, bytes: entry.bytes });
      } else if (entries.get(uid) === entry) {
        entries.delete(uid);
        this.#bytes -= entry.bytes;
      }
    });
    return present;
  }

  async size(): Promise<{ bytes: number; instances: number }> {
    const entries = await this.#index();
    return { bytes: this.#bytes, instances: entries.size };
  }

  /** Removes the least recently used unpinned entries until the cache fits its limit. */
  async evict(): Promise<number> {
    const entries = await this.#index();
    let removed = 0;
    for (const [uid, entry] of entries) {
      if (this.#bytes <= this.maxBytes) break;
      if (this.#pins.has(uid)) continue;
      entries.delete(uid);
      this.#bytes -= entry.bytes;
      await rm(entry.path, { force: true });
      removed++;
      // empty series and study folders go too (rmdir refuses a folder that is not empty)
      const series = dirname(entry.path);
      if (await rmdir(series).then(() => true, () => false)) await rmdir(dirname(series)).catch(() => undefined);
    }
    return removed;
  }
}
