/**
 * What the services may read. The Electron app allows only files and folders under a root the
 * user chose (the open dialogs, a drop, the command line, a recent study) plus its own model and
 * training folders, so that a compromised renderer cannot make the main process read arbitrary
 * files (SSH keys, browser profiles) and send them back as "volumes". A server may be limited
 * to given folders the same way.
 *
 * Decided on real paths: a symlink inside a root (a folder, a file, DICOM files in a study
 * folder) that leads outside it does not make its target readable. The request is checked
 * when it arrives (`check`), and every file a reader then opens is checked again on the opened
 * descriptor (`scope`, used with withReadScope in util/fs.ts), so a symlink swapped in between
 * cannot win.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from './errors.ts';
import { isInsideFolder, type ReadScope } from './util/fs.ts';

/**
 * The real path of `path`, or, for a path that does not exist (yet), the real path of its
 * deepest existing ancestor joined with the rest, so a symlinked parent is still resolved.
 */
export function realPathOf(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync.native(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    return join(realPathOf(parent), basename(absolute));
  }
}

export class ReadRoots {
  /** as granted (shown to the user, where a browser starts) → its real path (what is compared) */
  readonly #roots = new Map<string, string>();
  /** the app's own read-only folders (the bundled model): readable, never listed */
  readonly #internal: string[];

  constructor(initial: Iterable<string> = [], options: { internal?: Iterable<string> } = {}) {
    for (const root of initial) this.grant(root);
    this.#internal = [...(options.internal ?? [])].map(realPathOf);
  }

  /** Adds a root; returns its canonical form. */
  grant(path: string): string {
    const canonical = resolve(path);
    this.#roots.set(canonical, realPathOf(canonical));
    return canonical;
  }

  /** The roots, in the order granted (where a file browser may start). */
  list(): string[] {
    return [...this.#roots.keys()];
  }

  #allowsReal(real: string): boolean {
    for (const root of this.#roots.values()) if (isInsideFolder(root, real)) return true;
    return this.#internal.some((root) => isInsideFolder(root, real));
  }

  allows(path: string): boolean {
    return this.#allowsReal(realPathOf(path));
  }

  /** `hint` says how the user makes a path readable here */
  check(path: string, hint = 'open it through the Open dialog or drop it on the window first'): void {
    if (!this.allows(path)) throw new UserError(`refusing to read ${path}: ${hint}`);
  }

  /** The open-time check (withReadScope in util/fs.ts): the roots as they are now. */
  scope(hint = 'it is outside the folders the app may read'): ReadScope {
    return { roots: [...new Set([...this.#roots.values(), ...this.#internal])], hint };
  }
}
