import { describe, expect, it } from 'vitest';
import { createProgress, formatDuration } from '../../../main/cli/progress.ts';

function sink(interactive: boolean) {
  const out: string[] = [];
  return { io: { stderr: (t: string) => void out.push(t), interactive }, out };
}

describe('createProgress', () => {
  it('prints the first line, then one every step percent, when stderr is not a terminal', () => {
    const { io, out } = sink(false);
    let t = 0;
    const p = createProgress(io, 'segment', 155, { unit: 'slices', step: 25, now: () => t });
    for (let i = 1; i <= 155; i++) {
      t += 10;
      p.update(i);
    }
    p.finish();
    expect(out).toEqual([
      'segment   0% 1/155 slices ETA 1.5 s\n',
      'segment  25% 39/155 slices ETA 1.2 s\n',
      'segment  50% 78/155 slices ETA 770 ms\n',
      'segment  75% 117/155 slices ETA 380 ms\n',
      'segment 100% 155/155 slices\n',
      'segment 155/155 slices in 1.6 s\n',
    ]);
  });

  it('redraws in place on a terminal, at most every 100 ms, and always the last state', () => {
    const { io, out } = sink(true);
    let t = 0;
    const p = createProgress(io, 'x', 4, { width: 4, now: () => t });
    p.update(1);
    t = 50;
    p.update(2); // throttled
    t = 200;
    p.update(3, 'slice 3');
    p.update(4);
    p.finish('done');
    expect(out.every((s) => s.startsWith('\r'))).toBe(true);
    expect(out.map((s) => s.trimEnd())).toEqual([
      '\r[#...] x  25% 1/4 ETA 0 ms',
      '\r[###.] x  75% 3/4 ETA 67 ms slice 3',
      '\r[####] x 100% 4/4',
      '\rdone',
    ]);
    expect(out.at(-1)!.endsWith('\n')).toBe(true);
    expect(out.join('').includes('\n')).toBe(true);
  });

  it('follows a fractional count (a study half done) in the bar and the ETA, and shows whole items', () => {
    const { io, out } = sink(false);
    let t = 0;
    const p = createProgress(io, 'cohort', 4, { unit: 'studies', step: 25, now: () => t });
    t = 10_000;
    p.update(0.5, 'case 1 78/155 slices');
    t = 20_000;
    p.update(1.25, 'case 2');
    expect(out).toEqual(['cohort  12% 0/4 studies ETA 1 min 10 s case 1 78/155 slices\n', 'cohort  31% 1/4 studies ETA 44.0 s case 2\n']);
  });

  it('formats durations', () => {
    expect(formatDuration(12)).toBe('12 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(119_700)).toBe('1 min 59 s');
  });
});
