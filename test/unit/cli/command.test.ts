import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rangedOption, SEED_RANGE, type ParsedArgs } from '../../../main/cli/command.ts';
import { main } from '../../../main/cli/index.ts';

const args = (values: Record<string, string>): ParsedArgs => ({ values, positionals: [] });

describe('rangedOption: numeric flags checked against their range', () => {
  it('returns the value or the fallback when it is in range', () => {
    expect(rangedOption(args({ runs: '3' }), 'runs', { integer: true, min: 1, max: 10 })).toBe(3);
    expect(rangedOption(args({}), 'runs', { integer: true, min: 1, max: 10 }, 5)).toBe(5);
    expect(rangedOption(args({}), 'runs', { integer: true, min: 1 })).toBeUndefined();
    expect(rangedOption(args({ lr: '1e-4' }), 'lr', { above: 0 })).toBe(1e-4);
    expect(rangedOption(args({ seed: '4294967295' }), 'seed', SEED_RANGE)).toBe(4294967295);
  });

  it('refuses a value outside the range, naming the flag, the range and what was given', () => {
    const refusal = (values: Record<string, string>, name: string, range: Parameters<typeof rangedOption>[2]) => {
      try {
        rangedOption(args(values), name, range);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refusal({ runs: '0' }, 'runs', { integer: true, min: 1, max: 10 })).toBe('--runs expects an integer 1…10, got 0');
    expect(refusal({ runs: '2.5' }, 'runs', { integer: true, min: 1, max: 10 })).toBe('--runs expects an integer 1…10, got 2.5');
    expect(refusal({ offset: '-1' }, 'offset', { integer: true, min: 0 })).toBe('--offset expects an integer ≥ 0, got -1');
    expect(refusal({ lr: '0' }, 'lr', { above: 0 })).toBe('--lr expects a number > 0, got 0');
    expect(refusal({ share: '1.01' }, 'share', { min: 0, max: 1 })).toBe('--share expects a number 0…1, got 1.01');
    expect(refusal({ seed: '4294967296' }, 'seed', SEED_RANGE)).toBe('--seed expects an integer 0…4294967295, got 4294967296');
    expect(refusal({ seed: '1e400' }, 'seed', SEED_RANGE)).toBe('--seed expects a number, got "1e400"');
    expect(refusal({ runs: 'five' }, 'runs', { integer: true, min: 1 })).toBe('--runs expects a number, got "five"');
  });
});

describe('commands refuse numeric flags out of range before doing any work', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-ranges-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const cases: [string[], string][] = [
    [['phantom', '--out', join(tmp, 'phantoms'), '--cases', '0'], '--cases expects an integer 1…100000, got 0'],
    [['phantom', '--out', join(tmp, 'phantoms'), '--seed=-3'], '--seed expects an integer 0…4294967295, got -3'],
    [['demo', '--out', join(tmp, 'demo'), '--seed', '0.5'], '--seed expects an integer 0…4294967295, got 0.5'],
    [['bench', '--preset', 'tiny', '--runs', '0'], '--runs expects an integer 1…1000, got 0'],
    [['worker', '--redis', 'redis://127.0.0.1:1', '--concurrency', '65'], '--concurrency expects an integer 1…64, got 65'],
    [['model-info', '--checkpoint', join(tmp, 'none.safetensors'), '--lora-rank', '0'], '--lora-rank expects an integer ≥ 1, got 0'],
  ];
  for (const [argv, message] of cases) {
    it(`${argv[0]}: ${message}`, async () => {
      let stderr = '';
      const code = await main(argv, { stdout: () => undefined, stderr: (t) => void (stderr += t), interactive: false });
      expect(code, stderr).not.toBe(0);
      expect(stderr).toContain(message);
      expect(readdirSync(tmp)).toEqual([]);
    });
  }
});
