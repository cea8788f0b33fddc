import type { ParseArgsConfig } from 'node:util';
import { UserError } from '../core/errors.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; valueName?: string };

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Where a command writes: stdout for results, stderr for progress and messages. */
export interface CommandIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** true when stderr is a terminal, so progress bars may redraw in place */
  interactive: boolean;
}

/**
 * One `sam2unet <name>` command. Heavy modules are imported inside `run`, so that `--help`
 * and unrelated commands start fast.
 */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** extra help text printed after the options */
  details?: string;
  run(args: ParsedArgs, io: CommandIO): Promise<number>;
}

export function defineCommand(command: Command): Command {
  return command;
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function numberOption(args: ParsedArgs, name: string, fallback?: number): number | undefined {
  const raw = stringOption(args, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) {
    throw new UserError(`--${name} expects a number, got "${raw}"`);
  }
  return value;
}

/** A comma-separated list (`--data a,b`), blanks dropped. */
export function listOption(args: ParsedArgs, name: string): string[] | undefined {
  return stringOption(args, name)
    ?.split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

export function requireOption(args: ParsedArgs, name: string): string {
  const value = stringOption(args, name);
  if (value === undefined || value === '') throw new UserError(`--${name} is required (see --help)`);
  return value;
}
