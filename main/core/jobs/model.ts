/**
 * Turning a checkpoint file into a SliceModel: read and validate the weights, build (or find in
 * the disk cache) the ONNX graph for the input size, and open it in a worker-thread session.
 */
import { FileError } from '../errors.ts';
import { readCheckpoint } from '../model/checkpoint.ts';
import type { HieraConfig } from '../model/config.ts';
import { buildSam2UNetModel } from '../model/engine.ts';
import { checkInputSize, resolveRunSettings, type RunSettings, type StoredRunSettings } from '../model/run-settings.ts';
import { type Device, providerCandidates, providerUnavailable, SessionClient } from '../onnx/session.ts';
import type { Precision } from '../onnx/quantize.ts';
import { bundledFor } from './bundled.ts';
import { mirrorAveraged, type SliceModel, sliceModelFromSession } from './slice-model.ts';

export interface CheckpointModelOptions {
  /** the trunk configuration; default: the bundled model's config.json, stored in the file or detected from its shapes */
  config?: HieraConfig;
  /**
   * model input [H, W], multiples of 32; default what the checkpoint (or the bundled model's
   * config.json) says, else 352×352 (run-settings.ts)
   */
  size?: readonly [number, number];
  /** the user's channels, regions, test-time augmentation (and size): above what the checkpoint says */
  user?: StoredRunSettings;
  device?: Device;
  /** the graph's arithmetic (default float32; onnx/quantize.ts) */
  precision?: Precision;
  threads?: number;
  /** the engine's disk cache: false = none, a string = that folder; default the user cache */
  cache?: boolean | string;
  /** provider fallback notices and similar remarks */
  onMessage?: (message: string) => void;
}

export interface CheckpointModel extends SliceModel {
  checkpoint: string;
  /** the checkpoint is the bundled default model */
  bundled: boolean;
  config: HieraConfig;
  /** how it runs: input size (= inputSize), channels, regions and test-time augmentation, each with where it came from */
  settings: RunSettings;
  /** ms to read the weights, build or load the graph, and open the session */
  loadMs: number;
  /** the ONNX model came from the disk cache */
  cached: boolean;
  precision: Precision;
}

export async function sliceModelFromCheckpoint(path: string, opts: CheckpointModelOptions = {}): Promise<CheckpointModel> {
  const started = performance.now();
  const user: StoredRunSettings = { ...opts.user, ...(opts.size ? { size: [opts.size[0], opts.size[1]] as [number, number] } : {}) };
  if (user.size) checkInputSize(user.size);
  const bundled = await bundledFor(path);
  const checkpoint = await readCheckpoint(path, { config: opts.config ?? bundled?.config });
  if (checkpoint.kind !== 'sam2unet') {
    throw new FileError(path, 'holds only a SAM2 Hiera trunk, without the SAM2-UNet decoder: it cannot segment (fine-tune it first, or pass a SAM2-UNet checkpoint)');
  }
  const run = resolveRunSettings({ user, checkpoint: checkpoint.run, bundled: bundled?.run }, checkpoint.outChannels);
  const { size } = run;
  checkInputSize(size);
  let precision = opts.precision ?? 'float32';
  const gpuHalfMessage = 'float16 is for GPU providers; the model runs in float32 on the CPU';
  if (precision === 'float16' && !providerCandidates(opts.device ?? 'auto').some((p) => p !== 'cpu' && !providerUnavailable(p))) {
    opts.onMessage?.(`${gpuHalfMessage} (no GPU provider is available here)`);
    precision = 'float32';
  }
  let cached = false;
  const open = async (p: Precision): Promise<SessionClient> => {
    const built = await buildSam2UNetModel(checkpoint.config, checkpoint.weights, { height: size[0], width: size[1], outChannels: checkpoint.outChannels, origin: path, cache: opts.cache, precision: p });
    cached = built.cached;
    return SessionClient.create(built.source, { device: opts.device, threads: opts.threads, onMessage: opts.onMessage });
  };
  let session = await open(precision).catch(async (err: unknown) => {
    // a GPU provider that looked present and failed leaves the CPU, which has no float16 kernels
    if (precision !== 'float16') throw err;
    opts.onMessage?.(gpuHalfMessage);
    precision = 'float32';
    return open(precision);
  });
  if (precision === 'float16' && session.provider === 'cpu') {
    await session.dispose();
    opts.onMessage?.(gpuHalfMessage);
    precision = 'float32';
    session = await open(precision);
  }
  const single = sliceModelFromSession(session, { inputSize: size, outChannels: checkpoint.outChannels });
  const model = run.tta === 'mirror' ? mirrorAveraged(single) : single;
  return Object.assign(model, { checkpoint: path, bundled: bundled !== null, config: checkpoint.config, settings: run, loadMs: performance.now() - started, cached, precision });
}
