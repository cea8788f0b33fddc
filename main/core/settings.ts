/**
 * What the workstation remembers between sessions: the settings, the recently opened studies
 * and the checkpoints the user added. One JSON file, written atomically; a file that cannot be
 * read is set aside (never overwritten) and the defaults are used, so nothing is lost silently.
 */
import { readFile, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { RecentStudy, Settings } from './api.ts';
import { requestValidators } from './api.ts';
import { errorMessage } from './errors.ts';
import { writeFileAtomic } from './util/fs.ts';
import { DEFAULT_SETTINGS } from './conventions.ts';
import type { PacsConnection } from './pacs/connection.ts';

export { DEFAULT_SETTINGS } from './conventions.ts';

/** Where the CLI's server keeps settings and training runs (the desktop app uses Electron's userData). */
export function userDataDir(): string {
  if (process.env.SAM2UNET_DATA) return resolve(process.env.SAM2UNET_DATA);
  if (process.platform === 'win32' && process.env.APPDATA) return join(process.env.APPDATA, 'sam2unet-workstation');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'sam2unet-workstation');
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'sam2unet-workstation');
}

const MAX_RECENT = 12;
const MAX_MODELS = 64;

interface StoredState {
  version: 1;
  settings: Settings;
  recent: RecentStudy[];
  /** checkpoint files the user added, most recent first */
  models: string[];
  /** PACS connections (core/pacs/connection.ts), without their secrets */
  pacs: PacsConnection[];
}

const fresh = (): StoredState => ({ version: 1, settings: structuredClone(DEFAULT_SETTINGS), recent: [], models: [], pacs: [] });

export class SettingsStore {
  readonly file: string | undefined;
  #state: StoredState = fresh();
  /** one read, shared by every caller that arrives before it finishes */
  #loading?: Promise<StoredState>;
  /** writes are chained so that two quick updates never race on the temp file */
  #writing: Promise<void> = Promise.resolve();
  readonly #log: (line: string) => void;

  /** Without a file the store lives in memory only (tests, throwaway servers). */
  constructor(file?: string, log: (line: string) => void = () => {}) {
    this.file = file ? resolve(file) : undefined;
    this.#log = log;
  }

  #load(): Promise<StoredState> {
    this.#loading ??= this.#read();
    return this.#loading;
  }

  async #read(): Promise<StoredState> {
    if (!this.file) return this.#state;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log(`cannot read ${this.file} (${errorMessage(err)}); using the defaults`);
      return this.#state;
    }
    const parsed = parseStoredState(text);
    if (typeof parsed === 'string') {
      const aside = `${this.file}.unreadable-${Date.now()}`;
      this.#log(`${this.file}: ${parsed}; kept as ${basename(aside)}, using the defaults`);
      await rename(this.file, aside).catch(() => undefined);
      return this.#state;
    }
    this.#state = parsed;
    return this.#state;
  }

  async #save(): Promise<void> {
    const file = this.file;
    if (!file) return;
    const text = `${JSON.stringify(this.#state, null, 2)}\n`;
    this.#writing = this.#writing.then(() => writeFileAtomic(file, text)).catch((err: unknown) => this.#log(`cannot save ${file}: ${errorMessage(err)}`));
    await this.#writing;
  }

  async settings(): Promise<Settings> {
    return structuredClone((await this.#load()).settings);
  }

  async updateSettings(changes: Partial<Settings>): Promise<Settings> {
    const state = await this.#load();
    state.settings = { ...state.settings, ...changes, labelColors: { ...state.settings.labelColors, ...changes.labelColors } };
    await this.#save();
    return structuredClone(state.settings);
  }

  async recent(): Promise<RecentStudy[]> {
    return structuredClone((await this.#load()).recent);
  }

  async addRecent(path: string, name: string): Promise<void> {
    const state = await this.#load();
    const canonical = resolve(path);
    state.recent = [{ path: canonical, name, openedAt: new Date().toISOString() }, ...state.recent.filter((r) => r.path !== canonical)].slice(0, MAX_RECENT);
    await this.#save();
  }

  async models(): Promise<string[]> {
    return [...(await this.#load()).models];
  }

  async addModel(path: string): Promise<void> {
    const state = await this.#load();
    const canonical = resolve(path);
    state.models = [canonical, ...state.models.filter((m) => m !== canonical)].slice(0, MAX_MODELS);
    await this.#save();
  }

  async pacsConnections(): Promise<PacsConnection[]> {
    return structuredClone((await this.#load()).pacs);
  }

  async setPacsConnections(connections: PacsConnection[]): Promise<void> {
    const state = await this.#load();
    state.pacs = structuredClone(connections);
    await this.#save();
  }
}

/** The stored state, or why it cannot be used. Every field is checked: the file is user-editable. */
export function parseStoredState(text: string): StoredState | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${errorMessage(err)})`;
  }
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const record = value as Partial<StoredState>;
  if (record.version !== 1) return `unknown version ${JSON.stringify(record.version)}`;
  const settings = { ...DEFAULT_SETTINGS, ...(record.settings ?? {}) };
  const problem = requestValidators.updateSettings(settings, 'settings');
  if (problem) return problem;
  const recent = Array.isArray(record.recent) ? record.recent.filter((r): r is RecentStudy => typeof r?.path === 'string' && typeof r.name === 'string' && typeof r.openedAt === 'string') : [];
  const models = Array.isArray(record.models) ? record.models.filter((m): m is string => typeof m === 'string') : [];
  const pacs = Array.isArray(record.pacs) ? record.pacs.filter(isPacsConnection) : [];
  return { version: 1, settings, recent: recent.slice(0, MAX_RECENT), models: models.slice(0, MAX_MODELS), pacs };
}

function isPacsConnection(c: unknown): c is PacsConnection {
  const x = c as Partial<PacsConnection> | null;
  return typeof x?.id === 'string' && typeof x.name === 'string' && typeof x.url === 'string' && ['none', 'basic', 'bearer'].includes(x.auth as string) && (x.user === undefined || typeof x.user === 'string');
}
