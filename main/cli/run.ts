/**
 * Running one command: its options parsed, --help and --max-memory handled, errors turned into
 * the one line and the exit status the README promises. The `sam2unet` entry (index.ts) and
 * commands that run others (demo) share it.
 */
import { parseArgs } from 'node:util';
import { CancelledError, UserError, errorMessage } from '../core/errors.ts';
import type { Command, CommandIO, OptionSpec } from './command.ts';

const commonOptions: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
  debug: { type: 'boolean', description: 'print stack traces on errors' },
  'max-memory': { type: 'string', description: 'refuse files declaring more than this much to allocate (default: a quarter of the physical memory)', valueName: 'size' },
};

function formatOptions(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `--${name}${spec.type === 'string' ? ` <${spec.valueName ?? 'value'}>` : ''}`;
    const short = spec.short ? `-${spec.short}, ` : '    ';
    return [`  ${short}${flag}`, spec.description];
  });
  const width = Math.max(...rows.map(([left]) => left!.length)) + 2;
  return rows.map(([left, right]) => left!.padEnd(width) + right).join('\n');
}

export function commandHelp(command: Command): string {
  const options = { ...command.options, ...commonOptions };
  return [
    `Usage: sam2unet ${command.usage}`,
    '',
    command.summary,
    '',
    'Options:',
    formatOptions(options),
    ...(command.details ? ['', command.details] : []),
    '',
  ].join('\n');
}

export function defaultIO(): CommandIO {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    interactive: Boolean(process.stderr.isTTY),
  };
}

/** The error line and exit status of a failed command: 2 for the user's, 130 for a cancellation, 1 for a bug. */
export function reportError(err: unknown, io: CommandIO, debug: boolean): number {
  if (err instanceof CancelledError) {
    io.stderr('sam2unet: cancelled\n');
    return 130;
  }
  if (debug && err instanceof Error) io.stderr(`${err.stack ?? err.message}\n`);
  else io.stderr(`sam2unet: ${oneLine(errorMessage(err))}\n`);
  return err instanceof UserError ? 2 : 1;
}

/** Runs `command` with its arguments; returns the exit status, never throws. */
export async function runCommand(command: Command, argv: string[], io: CommandIO): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: { ...command.options, ...commonOptions }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UserError(`${command.name}: ${errorMessage(err)}`);
    }
    if (parsed.values.help) {
      io.stdout(commandHelp(command));
      return 0;
    }
    const maxMemory = parsed.values['max-memory'];
    if (typeof maxMemory === 'string') (await import('../core/util/limits.ts')).setMemoryLimit(maxMemory);
    return await command.run(parsed as Parameters<Command['run']>[0], io);
  } catch (err) {
    return reportError(err, io, argv.includes('--debug'));
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
