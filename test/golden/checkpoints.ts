import { dirname } from 'node:path';
import { readCheckpoint, type LoadedCheckpoint } from '../../main/core/model/checkpoint.ts';
import { manifestConfig } from './helpers.ts';

/** A golden checkpoint read the way the CLI reads it with `--config <manifest.json>`. */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  return readCheckpoint(path, { config: await manifestConfig(dirname(path)) });
}
