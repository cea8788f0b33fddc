/**
 * PACS connections: what is remembered (name, base URL, kind of authentication, user) and where
 * the secret goes. The secret (password or bearer token) is never written into settings.json:
 * the desktop app keeps it encrypted with Electron's safeStorage (the OS keychain's key), the
 * browser-mode server in a file of its data folder readable by its owner only (0600), the CLI
 * takes it from the environment only (a flag would show in the process list).
 */
import { chmod, readFile, stat } from 'node:fs/promises';
import { UserError, errorMessage } from '../errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { normalizeBaseUrl, type PacsAuth } from './dicomweb.ts';

import { PACS_AUTH_KINDS } from '../api.ts';

export { PACS_AUTH_KINDS };
export type PacsAuthKind = (typeof PACS_AUTH_KINDS)[number];

/** What settings.json keeps of a connection: no secret. */
export interface PacsConnection {
  id: string;
  name: string;
  url: string;
  auth: PacsAuthKind;
  /** basic authentication's user */
  user?: string;
}

export const PACS_ENV = { url: 'SAM2UNET_PACS_URL', user: 'SAM2UNET_PACS_USER', password: 'SAM2UNET_PACS_PASSWORD', token: 'SAM2UNET_PACS_TOKEN' } as const;

/** The CLI's credentials: SAM2UNET_PACS_TOKEN (bearer) or SAM2UNET_PACS_USER + SAM2UNET_PACS_PASSWORD (basic), or none. */
export function authFromEnv(env: NodeJS.ProcessEnv = process.env): PacsAuth {
  const token = env[PACS_ENV.token];
  const user = env[PACS_ENV.user];
  const password = env[PACS_ENV.password];
  if (token && (user || password)) throw new UserError(`set either ${PACS_ENV.token} (bearer) or ${PACS_ENV.user} and ${PACS_ENV.password} (basic), not both`);
  if (token) return { kind: 'bearer', token };
  if (user && password === undefined) throw new UserError(`${PACS_ENV.user} is set but ${PACS_ENV.password} is not`);
  if (password !== undefined && !user) throw new UserError(`${PACS_ENV.password} is set but ${PACS_ENV.user} is not`);
  if (user) return { kind: 'basic', user, password: password! };
  return { kind: 'none' };
}

/** The PacsAuth of a stored connection with its secret (missing secret: a clear error, not an anonymous request). */
export function authOf(connection: Pick<PacsConnection, 'auth' | 'user' | 'name'>, secret: string | undefined): PacsAuth {
  if (connection.auth === 'none') return { kind: 'none' };
  if (!secret) throw new UserError(`the PACS connection "${connection.name}" has no ${connection.auth === 'basic' ? 'password' : 'token'} saved; enter it in Settings`);
  if (connection.auth === 'basic') {
    if (!connection.user) throw new UserError(`the PACS connection "${connection.name}" uses basic authentication but has no user`);
    return { kind: 'basic', user: connection.user, password: secret };
  }
  return { kind: 'bearer', token: secret };
}

export function checkConnection(connection: PacsConnection): PacsConnection {
  const url = normalizeBaseUrl(connection.url);
  if (connection.auth === 'basic' && !connection.user?.trim()) throw new UserError('basic authentication needs a user');
  if (connection.auth === 'basic' && connection.user!.includes(':')) throw new UserError('a basic-authentication user name cannot contain ":"');
  return { ...connection, url, ...(connection.auth === 'basic' ? { user: connection.user!.trim() } : {}), name: connection.name.trim() || url };
}

export interface SecretStore {
  /** where secrets are kept, in words (Settings shows it) */
  readonly where: string;
  get(id: string): Promise<string | undefined>;
  set(id: string, secret: string): Promise<void>;
  delete(id: string): Promise<void>;
}

/** Tests and throwaway servers: secrets in memory only. */
export class MemorySecretStore implements SecretStore {
  readonly where = 'in memory (forgotten when the server stops)';
  readonly #secrets = new Map<string, string>();
  async get(id: string) {
    return this.#secrets.get(id);
  }
  async set(id: string, secret: string) {
    this.#secrets.set(id, secret);
  }
  async delete(id: string) {
    this.#secrets.delete(id);
  }
}

export interface SecretCipher {
  /** e.g. Electron's safeStorage: whether encryption is backed by the OS keychain right now */
  available(): boolean;
  encrypt(plain: string): Uint8Array;
  decrypt(sealed: Uint8Array): string;
}

/**
 * Secrets in one JSON file, mode 0600, written atomically. With a cipher (the desktop app:
 * safeStorage) each value is stored encrypted; without one (browser mode) the owner-only file
 * is the protection, as for SSH keys. A file other users can read is refused, not used.
 */
export class FileSecretStore implements SecretStore {
  readonly file: string;
  readonly where: string;
  readonly #cipher?: SecretCipher;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(file: string, cipher?: SecretCipher) {
    this.file = file;
    this.#cipher = cipher;
    this.where = cipher ? `encrypted with the system keychain in ${file}` : `in ${file}, readable by this user only`;
  }

  async #read(): Promise<Record<string, string>> {
    let text: string;
    try {
      const info = await stat(this.file);
      if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
        throw new UserError(`${this.file} can be read by other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 on it, then try again`);
      }
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      if (err instanceof UserError) throw err;
      throw new UserError(`cannot read the PACS secrets (${this.file}): ${errorMessage(err)}`);
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      return Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
    } catch (err) {
      throw new UserError(`${this.file} is damaged (${errorMessage(err)}); delete it and enter the PACS passwords again`);
    }
  }

  async #write(secrets: Record<string, string>): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
    // a file that existed with wider permissions was replaced by the rename; make sure anyway
    await chmod(this.file, 0o600).catch(() => undefined);
  }

  /** one read-modify-write at a time */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async get(id: string): Promise<string | undefined> {
    const stored = (await this.#read())[id];
    if (stored === undefined) return undefined;
    if (!this.#cipher) return stored;
    if (!this.#cipher.available()) throw new UserError('the system keychain is not available, so the saved PACS password cannot be decrypted');
    return this.#cipher.decrypt(Buffer.from(stored, 'base64'));
  }

  async set(id: string, secret: string): Promise<void> {
    await this.#serial(async () => {
      let value = secret;
      if (this.#cipher) {
        // never fall back to clear text when the keychain is missing (safeStorage on Linux without a keyring)
        if (!this.#cipher.available()) throw new UserError('no system keychain is available to encrypt the PACS password; it was not saved');
        value = Buffer.from(this.#cipher.encrypt(secret)).toString('base64');
      }
      await this.#write({ ...(await this.#read()), [id]: value });
    });
  }

  async delete(id: string): Promise<void> {
    await this.#serial(async () => {
      const secrets = await this.#read();
      if (!(id in secrets)) return;
      delete secrets[id];
      await this.#write(secrets);
    });
  }
}
