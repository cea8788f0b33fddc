/**
 * Exports from the Electron app go only where the user said, through the save dialog: the main
 * process remembers each path the dialog returned and refuses any other, so a compromised
 * renderer cannot write files of its choosing.
 */
import { resolve } from 'node:path';
import { UserError } from '../core/errors.ts';

export class ExportPathGuard {
  readonly #chosen = new Set<string>();

  /** Called with the dialog's answer; returns the canonical path. */
  remember(path: string): string {
    const canonical = resolve(path);
    this.#chosen.add(canonical);
    return canonical;
  }

  /**
   * The path to write for an export request: only one the dialog returned, and only once (a
   * second export needs a second choice).
   */
  take(path: string | undefined): string {
    if (!path) throw new UserError('choose where to save the export first');
    const canonical = resolve(path);
    if (!this.#chosen.has(canonical)) throw new UserError(`refusing to write ${path}: it was not chosen in the save dialog`);
    this.#chosen.delete(canonical);
    return canonical;
  }
}
