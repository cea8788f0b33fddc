/**
 * The bundled default model's location and settings, and the input-size rule. Kept apart from
 * model.ts (which pulls in the whole engine) because the UI's process asks these questions and
 * must not load the engine to answer them.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { FileError, UserError } from '../errors.ts';
import { type HieraConfig, parseHieraConfig } from '../model/config.ts';

export function checkInputSize(size: readonly [number, number]): void {
  for (const d of size) {
    if (!Number.isInteger(d) || d < 32 || d % 32 !== 0 || d > 4096) {
      throw new UserError(`model input size ${size.join('×')}: each side must be a multiple of 32 between 32 and 4096`);
    }
  }
}

/** Where the bundled model lives: models/default/ at the project root. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/default/', import.meta.url));

export interface BundledModel {
  checkpoint: string;
  config?: HieraConfig;
  /** the input size the model was trained at (config.json "size": N or [H, W]) */
  size?: [number, number];
}

/**
 * The bundled default model: models/default/model.safetensors, with an optional config.json
 * holding a preset name or Hiera configuration under "config" (else the one stored in or
 * detected from the weights).
 */
export async function bundledModel(dir = DEFAULT_MODEL_DIR): Promise<BundledModel> {
  const checkpoint = `${dir.replace(/\/$/, '')}/model.safetensors`;
  if (!existsSync(checkpoint)) {
    throw new UserError(`no bundled model exists yet (${checkpoint} is missing); pass --checkpoint <file> with a SAM2-UNet checkpoint (.pth or .safetensors)`);
  }
  const configFile = `${dir.replace(/\/$/, '')}/config.json`;
  if (!existsSync(configFile)) return { checkpoint };
  let value: unknown;
  try {
    value = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (err) {
    throw new FileError(configFile, `not valid JSON (${(err as Error).message})`);
  }
  const record = value && typeof value === 'object' ? (value as { config?: unknown; size?: unknown }) : {};
  const size = parseBundledSize(record.size, configFile);
  return { checkpoint, config: record.config === undefined ? undefined : parseHieraConfig(record.config, configFile), size };
}

function parseBundledSize(value: unknown, file: string): [number, number] | undefined {
  if (value === undefined) return undefined;
  const pair = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((d) => typeof d === 'number')) throw new FileError(file, '"size" must be a number or [height, width]');
  const size = pair as [number, number];
  checkInputSize(size);
  return size;
}
