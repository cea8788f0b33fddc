/**
 * Undo and redo of label-map edits, each step stored as the change it made (diff.ts), never as a
 * copy of the label map: a brush stroke on a 240×240×155 grid costs a few kilobytes instead of
 * 9 MB. The history keeps at least `minSteps` steps and, beyond those, drops the oldest once the
 * stored changes pass `maxBytes`.
 */
import { applyDiff, invertDiff } from './diff.ts';

export interface HistoryStep {
  /** what the user did, for the tooltip of Undo ("brush", "fill", …) */
  what: string;
  /** the encoded change (diff.ts) */
  change: Uint8Array;
}

export interface HistoryOptions {
  /** steps kept whatever their size (default 100) */
  minSteps?: number;
  /** at most this many steps (default 500) */
  maxSteps?: number;
  /** beyond minSteps, older steps go once the changes held pass this many bytes (default 48 MB) */
  maxBytes?: number;
}

export class EditHistory {
  readonly #done: HistoryStep[] = [];
  readonly #undone: HistoryStep[] = [];
  readonly #minSteps: number;
  readonly #maxSteps: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(options: HistoryOptions = {}) {
    this.#minSteps = options.minSteps ?? 100;
    this.#maxSteps = Math.max(this.#minSteps, options.maxSteps ?? 500);
    this.#maxBytes = options.maxBytes ?? 48 * 1024 * 1024;
  }

  /** Records an edit that has been applied already; the redo steps are gone. */
  push(step: HistoryStep): void {
    for (const s of this.#undone) this.#bytes -= s.change.byteLength;
    this.#undone.length = 0;
    this.#done.push(step);
    this.#bytes += step.change.byteLength;
    while (this.#done.length > this.#maxSteps || (this.#done.length > this.#minSteps && this.#bytes > this.#maxBytes)) {
      this.#bytes -= this.#done.shift()!.change.byteLength;
    }
  }

  /** Undoes the last step on `labels`; returns the change it made (to send on), or null when there is none. */
  undo(labels: Uint8Array): { what: string; change: Uint8Array } | null {
    const step = this.#done.at(-1);
    if (!step) return null;
    const inverse = invertDiff(step.change);
    applyDiff(labels, inverse);
    this.#done.pop();
    this.#undone.push(step);
    return { what: step.what, change: inverse };
  }

  /** Re-applies the last undone step; returns its change, or null. */
  redo(labels: Uint8Array): { what: string; change: Uint8Array } | null {
    const step = this.#undone.at(-1);
    if (!step) return null;
    applyDiff(labels, step.change);
    this.#undone.pop();
    this.#done.push(step);
    return { what: step.what, change: step.change };
  }

  clear(): void {
    this.#done.length = 0;
    this.#undone.length = 0;
    this.#bytes = 0;
  }

  get canUndo(): boolean {
    return this.#done.length > 0;
  }
  get canRedo(): boolean {
    return this.#undone.length > 0;
  }
  get undoSteps(): number {
    return this.#done.length;
  }
  get redoSteps(): number {
    return this.#undone.length;
  }
  /** what Undo and Redo would undo or redo */
  get nextUndo(): string | null {
    return this.#done.at(-1)?.what ?? null;
  }
  get nextRedo(): string | null {
    return this.#undone.at(-1)?.what ?? null;
  }
  /** bytes of the changes held (undo and redo steps) */
  get bytes(): number {
    return this.#bytes;
  }
}
