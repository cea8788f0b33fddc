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

/** The values a numeric flag accepts, stated in its refusal so the user sees what would do. */
export interface NumberRange {
  integer?: boolean;
  min?: number;
  /** an exclusive lower bound: a learning rate must be above 0, not 0 */
  above?: number;
  max?: number;
}

export const POSITIVE_INT: NumberRange = { integer: true, min: 1 };

/** Seeds are hashed as unsigned 32-bit words (util/random.ts): others would alias silently. */
export const SEED_RANGE: NumberRange = { integer: true, min: 0, max: 0xffffffff };

function describeRange(range: NumberRange): string {
  const kind = range.integer ? 'an integer' : 'a number';
  if (range.min !== undefined && range.max !== undefined) return `${kind} ${range.min}…${range.max}`;
  const bounds = [range.min !== undefined ? `≥ ${range.min}` : '', range.above !== undefined ? `> ${range.above}` : '', range.max !== undefined ? `≤ ${range.max}` : ''];
  return [kind, bounds.filter(Boolean).join(' and ')].filter(Boolean).join(' ');
}

/** A numeric flag checked against its range; the one place every command's numeric flags are refused. */
export function rangedOption(args: ParsedArgs, name: string, range: NumberRange, fallback: number): number;
export function rangedOption(args: ParsedArgs, name: string, range: NumberRange, fallback?: number): number | undefined;
export function rangedOption(args: ParsedArgs, name: string, range: NumberRange, fallback?: number): number | undefined {
  const value = numberOption(args, name, fallback);
  if (value === undefined) return undefined;
  const outside =
    (range.integer && !Number.isInteger(value)) ||
    (range.min !== undefined && value < range.min) ||
    (range.above !== undefined && !(value > range.above)) ||
    (range.max !== undefined && value > range.max);
  if (outside) throw new UserError(`--${name} expects ${describeRange(range)}, got ${stringOption(args, name) ?? value}`);
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
