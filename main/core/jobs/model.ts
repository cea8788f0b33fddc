/**
 * Turning a checkpoint file into a SliceModel: read and validate the weights, build (or find in
 * the disk cache) the ONNX graph for the input size, and open it in a worker-thread session.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { FileError, UserError } from '../errors.ts';
import { readCheckpoint } from '../model/checkpoint.ts';
import { type HieraConfig, parseHieraConfig } from '../model/config.ts';
import { buildSam2UNetModel } from '../model/engine.ts';
import { DEFAULT_INPUT_SIZE } from '../model/preprocess.ts';
import { type Device, SessionClient } from '../onnx/session.ts';
import { type SliceModel, sliceModelFromSession } from './slice-model.ts';

export interface CheckpointModelOptions {
  /** the trunk configuration; default: stored in the file or detected from its shapes */
  config?: HieraConfig;
  /** model input [H, W], multiples of 32; default 352×352 */
  size?: readonly [number, number];
  device?: Device;
  threads?: number;
  /** the engine's disk cache: false = none, a string = that folder; default the user cache */
  cache?: boolean | string;
  /** provider fallback notices and similar remarks */
  onMessage?: (message: string) => void;
}

export interface CheckpointModel extends SliceModel {
  checkpoint: string;
  config: HieraConfig;
  /** ms to read the weights, build or load the graph, and open the session */
  loadMs: number;
  /** the ONNX model came from the disk cache */
  cached: boolean;
}

export function checkInputSize(size: readonly [number, number]): void {
  for (const d of size) {
    if (!Number.isInteger(d) || d < 32 || d % 32 !== 0 || d > 4096) {
      throw new UserError(`model input size ${size.join('×')}: each side must be a multiple of 32 between 32 and 4096`);
    }
  }
}

export async function sliceModelFromCheckpoint(path: string, opts: CheckpointModelOptions = {}): Promise<CheckpointModel> {
  const started = performance.now();
  const size = opts.size ?? DEFAULT_INPUT_SIZE;
  checkInputSize(size);
  const checkpoint = await readCheckpoint(path, { config: opts.config });
  if (checkpoint.kind !== 'sam2unet') {
    throw new FileError(path, 'holds only a SAM2 Hiera trunk, without the SAM2-UNet decoder: it cannot segment (fine-tune it first, or pass a SAM2-UNet checkpoint)');
  }
  const built = await buildSam2UNetModel(checkpoint.config, checkpoint.weights, {
    height: size[0],
    width: size[1],
    outChannels: checkpoint.outChannels,
    origin: path,
    cache: opts.cache,
  });
  const session = await SessionClient.create(built.source, { device: opts.device, threads: opts.threads, onMessage: opts.onMessage });
  const model = sliceModelFromSession(session, { inputSize: size, outChannels: checkpoint.outChannels });
  return Object.assign(model, { checkpoint: path, config: checkpoint.config, loadMs: performance.now() - started, cached: built.cached });
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
