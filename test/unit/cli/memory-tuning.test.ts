import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const dir = mkdtempSync(join(tmpdir(), 'sam2unet-tuning-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { GLIBC_TUNABLES: _ignored, ...cleanEnv } = process.env;

describe.runIf(process.platform === 'linux')('the sam2unet command relaunches itself once with the memory settings', () => {
  it('runs the command under the tunables, with its arguments, once, and returns its exit status', () => {
    const probe = join(dir, 'probe.mjs');
    writeFileSync(
      probe,
      `import { relaunchWithMemoryTuning } from ${JSON.stringify(join(root, 'bin/memory-tuning.mjs'))};
       if (!relaunchWithMemoryTuning()) { console.log(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES, args: process.argv.slice(2) })); process.exit(7); }`,
    );
    const tuned = spawnSync(process.execPath, [probe, 'a b', '--c'], { encoding: 'utf8', env: cleanEnv });
    expect(tuned.status).toBe(7);
    const seen = JSON.parse(tuned.stdout.trim()) as { tunables: string; args: string[] };
    expect(seen.args).toEqual(['a b', '--c']);
    expect(seen.tunables).toMatch(/glibc\.malloc\.mmap_threshold=33554432/);
    expect(tuned.stdout.trim().split('\n')).toHaveLength(1);
    const off = spawnSync(process.execPath, [probe], { encoding: 'utf8', env: { ...cleanEnv, SAM2UNET_MEMORY_TUNING: 'off' } });
    expect(JSON.parse(off.stdout.trim()).tunables).toBeUndefined();
  });

  it('keeps the CLI contract through the relaunch: one-line error, non-zero status', () => {
    const run = spawnSync(process.execPath, [join(root, 'bin/sam2unet.mjs'), 'info', join(dir, 'missing.nii.gz')], { encoding: 'utf8', env: cleanEnv, cwd: root });
    expect(run.status).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/missing\.nii\.gz: no such file or directory/)]);
  });
});
