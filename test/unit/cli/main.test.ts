import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, main } from '../../../main/cli/index.ts';
import type { CommandIO } from '../../../main/cli/command.ts';

function capture(): CommandIO & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    interactive: false,
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
  };
  return io;
}

describe('sam2unet CLI', () => {
  it('lists commands with --help and exits 0', async () => {
    const io = capture();
    expect(await main(['--help'], io)).toBe(0);
    expect(io.out).toContain('Usage: sam2unet <command>');
  });

  it('refuses an unknown command with one line on stderr and status 2', async () => {
    const io = capture();
    expect(await main(['no-such-command'], io)).toBe(2);
    expect(io.err.trim().split('\n')).toHaveLength(1);
    expect(io.err).toContain('unknown command "no-such-command"');
  });

  it('prints the version', async () => {
    const io = capture();
    expect(await main(['--version'], io)).toBe(0);
    expect(io.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('lists every file of commands/ (the compiled CLI holds only the listed ones), each named after its file', async () => {
    const files = readdirSync(resolve(import.meta.dirname, '../../../main/cli/commands')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3));
    expect(Object.keys(COMMANDS).sort()).toEqual(files.sort());
    for (const [name, load] of Object.entries(COMMANDS)) expect((await load()).default.name).toBe(name);
  });
});
