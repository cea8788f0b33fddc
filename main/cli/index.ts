import { parseArgs } from 'node:util';
import { CancelledError, UserError, errorMessage } from '../core/errors.ts';
import type { Command, CommandIO, OptionSpec } from './command.ts';

/**
 * Every command, loaded when run: each file in commands/ default-exports one Command named after
 * the file. Listed rather than read from the folder so that the compiled CLI (scripts/build-app.mjs)
 * holds them all; test/unit/cli/main.test.ts checks the list against the folder.
 */
export const COMMANDS: Record<string, () => Promise<{ default: Command }>> = {
  bench: () => import('./commands/bench.ts'),
  compare: () => import('./commands/compare.ts'),
  convert: () => import('./commands/convert.ts'),
  demo: () => import('./commands/demo.ts'),
  eval: () => import('./commands/eval.ts'),
  forward: () => import('./commands/forward.ts'),
  info: () => import('./commands/info.ts'),
  measure: () => import('./commands/measure.ts'),
  'model-info': () => import('./commands/model-info.ts'),
  phantom: () => import('./commands/phantom.ts'),
  segment: () => import('./commands/segment.ts'),
  serve: () => import('./commands/serve.ts'),
  'train-step': () => import('./commands/train-step.ts'),
  train: () => import('./commands/train.ts'),
};

function commandNames(): string[] {
  return Object.keys(COMMANDS).sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!Object.hasOwn(COMMANDS, name)) return undefined;
  return (await COMMANDS[name]!()).default;
}

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

async function generalHelp(): Promise<string> {
  const lines = ['Usage: sam2unet <command> [options]', '', 'Commands:'];
  const commands = await Promise.all(commandNames().map(loadCommand));
  const width = Math.max(...commands.map((c) => c!.name.length)) + 2;
  for (const command of commands) lines.push(`  ${command!.name.padEnd(width)}${command!.summary}`);
  lines.push('', 'Run `sam2unet <command> --help` for the options of a command.', '');
  return lines.join('\n');
}

export function defaultIO(): CommandIO {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    interactive: Boolean(process.stderr.isTTY),
  };
}

/** Returns the process exit status; never throws. */
export async function main(argv: string[], io: CommandIO = defaultIO()): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    const [name, ...rest] = argv;
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      io.stdout(await generalHelp());
      return name ? 0 : 1;
    }
    if (name === '--version') {
      const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
      io.stdout(`${pkg.version}\n`);
      return 0;
    }
    const command = await loadCommand(name);
    if (!command) throw new UserError(`unknown command "${name}"; run \`sam2unet --help\` for the list`);
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...command.options, ...commonOptions }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UserError(`${name}: ${errorMessage(err)}`);
    }
    if (parsed.values.help) {
      io.stdout(commandHelp(command));
      return 0;
    }
    const maxMemory = parsed.values['max-memory'];
    if (typeof maxMemory === 'string') (await import('../core/util/limits.ts')).setMemoryLimit(maxMemory);
    return await command.run(parsed as Parameters<Command['run']>[0], io);
  } catch (err) {
    if (err instanceof CancelledError) {
      io.stderr('sam2unet: cancelled\n');
      return 130;
    }
    if (debug && err instanceof Error) io.stderr(`${err.stack ?? err.message}\n`);
    else io.stderr(`sam2unet: ${oneLine(errorMessage(err))}\n`);
    return err instanceof UserError ? 2 : 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
