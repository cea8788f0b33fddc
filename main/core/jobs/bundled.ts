/**
 * The bundled default model's location and settings. Kept apart from
 * model.ts (which pulls in the whole engine) because the UI's process asks these questions and
 * must not load the engine to answer them.
 */
import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileError, UserError } from '../errors.ts';
import { type HieraConfig, parseHieraConfig } from '../model/config.ts';
import { parseRunSettingsJson, type StoredRunSettings } from '../model/run-settings.ts';

/** Where the bundled model lives: models/default/ at the project root. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/default/', import.meta.url));

export interface BundledModel {
  checkpoint: string;
  config?: HieraConfig;
  /**
   * how it must be run, as config.json says ("size": N or [H, W], "channels": [...], "regions");
   * below the checkpoint's own metadata in precedence (run-settings.ts)
   */
  run: StoredRunSettings;
}

/** What the model list, the run panel and reports call the bundled model. */
export const BUNDLED_MODEL_NAME = 'bundled default model';

/**
 * The bundled default model: models/default/model.safetensors, with an optional config.json
 * holding a preset name or Hiera configuration under "config" (else the one stored in or
 * detected from the weights) and its run settings.
 */
export async function bundledModel(dir = DEFAULT_MODEL_DIR): Promise<BundledModel> {
  const checkpoint = `${dir.replace(/\/$/, '')}/model.safetensors`;
  if (!existsSync(checkpoint)) {
    throw new UserError(`no bundled model exists yet (${checkpoint} is missing); pass --checkpoint <file> with a SAM2-UNet checkpoint (.pth or .safetensors)`);
  }
  const configFile = `${dir.replace(/\/$/, '')}/config.json`;
  if (!existsSync(configFile)) return { checkpoint, run: {} };
  let value: unknown;
  try {
    value = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (err) {
    throw new FileError(configFile, `not valid JSON (${(err as Error).message})`);
  }
  const record = value && typeof value === 'object' ? (value as { config?: unknown; size?: unknown; channels?: unknown; regions?: unknown; tta?: unknown }) : {};
  const run = parseRunSettingsJson(record, (problem) => {
    throw new FileError(configFile, problem);
  });
  return { checkpoint, config: record.config === undefined ? undefined : parseHieraConfig(record.config, configFile), run };
}

/**
 * The bundled model when `checkpoint` is absent or is the bundled file (by whatever path it is
 * named: the model list hands over its path), else null. So the bundled model runs the same
 * however it was chosen. Without a bundled model and without a checkpoint: the bundled model's
 * "no model" error.
 */
export async function bundledFor(checkpoint?: string, dir = DEFAULT_MODEL_DIR): Promise<BundledModel | null> {
  if (checkpoint === undefined) return bundledModel(dir);
  const bundledPath = `${dir.replace(/\/$/, '')}/model.safetensors`;
  if (!existsSync(bundledPath)) return null;
  const real = (p: string) => realpath(p).catch(() => resolve(p));
  const [a, b] = await Promise.all([real(checkpoint), real(bundledPath)]);
  return a === b ? bundledModel(dir) : null;
}

/**
 * A model's name wherever it appears (model list, run panel, report "Model" line): the bundled
 * model by that name, else the file name, or the folder's for a run's model.safetensors.
 */
export function modelName(checkpoint: string, isBundled: boolean): string {
  if (isBundled) return BUNDLED_MODEL_NAME;
  const stem = basename(checkpoint, extname(checkpoint));
  return stem === 'model' ? basename(dirname(checkpoint)) : stem;
}
