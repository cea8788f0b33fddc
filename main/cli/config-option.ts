import { existsSync, readFileSync } from 'node:fs';
import { FileError, UserError, fileSystemProblem } from '../core/errors.ts';
import { HIERA_PRESETS, parseHieraConfig, type HieraConfig } from '../core/model/config.ts';

/**
 * A `--config` value: a preset name, inline JSON, or a JSON file (Hiera fields at top level or under
 * `config` / `trunk_config`, so the golden manifest.json files work as they are).
 */
export function hieraConfigOption(value: string | undefined, option = '--config'): HieraConfig | undefined {
  if (value === undefined) return undefined;
  if (value in HIERA_PRESETS) return parseHieraConfig(value, option);
  let text = value;
  let origin = option;
  if (!value.trim().startsWith('{')) {
    if (!existsSync(value)) throw new UserError(`${option} "${value}" is neither a preset (${Object.keys(HIERA_PRESETS).join(', ')}), JSON, nor an existing file`);
    try {
      text = readFileSync(value, 'utf8');
    } catch (err) {
      throw new FileError(value, fileSystemProblem(err));
    }
    origin = value;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const problem = `not valid JSON (${(err as Error).message})`;
    throw origin === option ? new UserError(`${option}: ${problem}`) : new FileError(origin, problem);
  }
  return parseHieraConfig(parsed, origin);
}
