/**
 * A progress bar on stderr for any command. On a terminal it redraws one line in place (at most
 * ten times a second); otherwise (a log file, CI) it prints a plain line every `step` percent, so
 * logs stay short and readable.
 */
import type { CommandIO } from './command.ts';

export interface ProgressOptions {
  /** what is being counted, e.g. "slices" */
  unit?: string;
  /** non-interactive: print a line every this many percent (default 10) */
  step?: number;
  /** bar width in characters on a terminal (default 30) */
  width?: number;
  /** clock in ms, for tests */
  now?: () => number;
}

export interface Progress {
  /**
   * `done` of `total` finished; `detail` is shown after the counts. `done` may be fractional (a
   * study half segmented): the bar and the ETA follow it, the counts show whole items.
   */
  update(done: number, detail?: string): void;
  /** ends the bar: a final line with `message` (or the counts) */
  finish(message?: string): void;
  /** clears the bar line on a terminal (before printing something else) */
  clear(): void;
}

export function createProgress(io: Pick<CommandIO, 'stderr' | 'interactive'>, label: string, total: number, opts: ProgressOptions = {}): Progress {
  const unit = opts.unit ? ` ${opts.unit}` : '';
  const step = opts.step ?? 10;
  const width = opts.width ?? 30;
  const now = opts.now ?? (() => performance.now());
  const started = now();
  let lastDraw = -Infinity;
  let lastPercentPrinted = -1;
  let lastLine = '';
  let done = 0;
  let finished = false;

  const percentOf = (n: number) => (total > 0 ? Math.floor((100 * n) / total) : 100);
  const eta = (n: number): string => {
    if (n <= 0 || n >= total) return '';
    const perItem = (now() - started) / n;
    return ` ETA ${formatDuration(perItem * (total - n))}`;
  };
  const line = (n: number, detail?: string): string => {
    const counts = `${Math.floor(n + 1e-9)}/${total}${unit}`;
    return `${label} ${String(percentOf(n)).padStart(3)}% ${counts}${eta(n)}${detail ? ` ${detail}` : ''}`;
  };

  return {
    update(n, detail) {
      if (finished) return;
      done = Math.max(0, Math.min(total, n));
      if (io.interactive) {
        const t = now();
        if (t - lastDraw < 100 && done < total) return;
        lastDraw = t;
        const filled = total > 0 ? Math.round((width * done) / total) : width;
        const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
        const text = `${bar} ${line(done, detail)}`;
        io.stderr(`\r${text}${' '.repeat(Math.max(0, lastLine.length - text.length))}`);
        lastLine = text;
      } else {
        const percent = percentOf(done);
        const bucket = Math.floor(percent / step) * step;
        if (bucket <= lastPercentPrinted || (bucket === 100 && done < total)) return;
        lastPercentPrinted = bucket;
        io.stderr(`${line(done, detail)}\n`);
      }
    },
    finish(message) {
      if (finished) return;
      finished = true;
      const text = message ?? `${label} ${Math.floor(done + 1e-9)}/${total}${unit} in ${formatDuration(now() - started)}`;
      if (io.interactive) io.stderr(`\r${text}${' '.repeat(Math.max(0, lastLine.length - text.length))}\n`);
      else io.stderr(`${text}\n`);
    },
    clear() {
      if (io.interactive && lastLine) {
        io.stderr(`\r${' '.repeat(lastLine.length)}\r`);
        lastLine = '';
        lastDraw = -Infinity;
      }
    },
  };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.floor(s - 60 * m)).padStart(2, '0')} s`;
}
