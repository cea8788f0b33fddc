/**
 * Turning a checkpoint file into a SliceModel: read and validate the weights, build (or find in
 * the disk cache) the ONNX graph for the input size, and open it in a worker-thread session.
 */
import { FileError } from '../errors.ts';
import { readCheckpoint } from '../model/checkpoint.ts';
import type { HieraConfig } from '../model/config.ts';
import { buildSam2UNetModel } from '../model/engine.ts';
import { DEFAULT_INPUT_SIZE } from '../model/preprocess.ts';
import { type Device, SessionClient } from '../onnx/session.ts';
import { checkInputSize } from './bundled.ts';
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
