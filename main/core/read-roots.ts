/**
 * What the services may read. The Electron app allows only files and folders under a root the
 * user chose (the open dialogs, a drop, the command line, a recent study) plus its own model and
 * training folders, so that a compromised renderer cannot make the main process read arbitrary
 * files (SSH keys, browser profiles) and send them back as "volumes". A server may be limited
 * to given folders the same way.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { UserError } from './errors.ts';

export class ReadRoots {
  readonly #roots = new Set<string>();

  constructor(initial: Iterable<string> = []) {
    for (const root of initial) this.grant(root);
  }

  /** Adds a root; returns its canonical form. */
  grant(path: string): string {
    const canonical = resolve(path);
    this.#roots.add(canonical);
    return canonical;
  }

  /** The roots, in the order granted (where a file browser may start). */
  list(): string[] {
    return [...this.#roots];
  }

  allows(path: string): boolean {
    const canonical = resolve(path);
    for (const root of this.#roots) {
      const inside = relative(root, canonical);
      if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) return true;
    }
    return false;
  }

  /** `hint` says how the user makes a path readable here */
  check(path: string, hint = 'open it through the Open dialog or drop it on the window first'): void {
    if (!this.allows(path)) throw new UserError(`refusing to read ${path}: ${hint}`);
  }
}
