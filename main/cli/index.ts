import { UserError } from '../core/errors.ts';
import type { Command, CommandIO } from './command.ts';
import { defaultIO, reportError, runCommand } from './run.ts';

export { commandHelp, defaultIO } from './run.ts';

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
  'device-check': () => import('./commands/device-check.ts'),
  eval: () => import('./commands/eval.ts'),
  forward: () => import('./commands/forward.ts'),
  info: () => import('./commands/info.ts'),
  measure: () => import('./commands/measure.ts'),
  'model-info': () => import('./commands/model-info.ts'),
  pacs: () => import('./commands/pacs.ts'),
  phantom: () => import('./commands/phantom.ts'),
  queue: () => import('./commands/queue.ts'),
  segment: () => import('./commands/segment.ts'),
  serve: () => import('./commands/serve.ts'),
  'train-step': () => import('./commands/train-step.ts'),
  train: () => import('./commands/train.ts'),
  worker: () => import('./commands/worker.ts'),
};

function commandNames(): string[] {
  return Object.keys(COMMANDS).sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!Object.hasOwn(COMMANDS, name)) return undefined;
  return (await COMMANDS[name]!()).default;
}

async function generalHelp(): Promise<string> {
  const lines = ['Usage: sam2unet <command> [options]', '', 'Commands:'];
  const commands = await Promise.all(commandNames().map(loadCommand));
  const width = Math.max(...commands.map((c) => c!.name.length)) + 2;
  for (const command of commands) lines.push(`  ${command!.name.padEnd(width)}${command!.summary}`);
  lines.push('', 'Run `sam2unet <command> --help` for the options of a command.', '');
  return lines.join('\n');
}

/** Returns the process exit status; never throws. */
export async function main(argv: string[], io: CommandIO = defaultIO()): Promise<number> {
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
  let command: Command | undefined;
  try {
    command = await loadCommand(name);
  } catch (err) {
    return reportError(err, io, argv.includes('--debug'));
  }
  if (!command) return reportError(new UserError(`unknown command "${name}"; run \`sam2unet --help\` for the list`), io, argv.includes('--debug'));
  return runCommand(command, rest, io);
}
