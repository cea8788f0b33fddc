/**
 * The inference engine's front door: checkpoint weights + configuration + input size → ONNX model
 * (cached on disk), ready for a SessionClient.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { Graph } from '../onnx/ir.ts';
import { RandomWeights, Weights } from '../onnx/layers.ts';
import { graphFlops } from '../onnx/ops.ts';
import { convertToFloat16, defaultWeightEncoding, quantizeInt8, splitProjections, type Precision, type WeightEncoding } from '../onnx/quantize.ts';
import { joinChunks, serializeModel, OPSET } from '../onnx/writer.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { UserError } from '../errors.ts';
import type { HieraConfig } from './config.ts';
import { CALIBRATION_ID, calibrateStaticRanges } from './calibrate.ts';
import { buildHieraTrunk } from './hiera.ts';
import { BARE_TRUNK_KEYS } from './keys.ts';
import { buildSam2UNet } from './sam2unet.ts';
import type { StateDict } from './tensor.ts';

export type ModelKind = 'trunk' | 'sam2unet';

export interface BuildOptions {
  height: number;
  width: number;
  /** SAM2-UNet heads' channels (default: from the weights) */
  outChannels?: number;
  /** fold eval-mode BatchNorm into the convolutions (default true; false keeps the official BN initializers) */
  foldBatchNorm?: boolean;
  /** names the weights' origin in errors */
  origin?: string;
  /** only ops with VJP rules (attention as MatMul + Softmax instead of MultiHeadAttention): the form a training graph differentiates */
  primitiveOnly?: boolean;
  /**
   * float32 (default); int8: weights per output channel and activations per run quantized for the
   * CPU's integer kernels (onnx/quantize.ts); float16: half-precision weights and activations for GPU providers
   */
  precision?: Precision;
  /** how int8 weights are stored (default: defaultWeightEncoding, for this CPU) */
  weightEncoding?: WeightEncoding;
  /**
   * int8: calibrated ranges of the maps only convolutions read (model/calibrate.ts); buildModel
   * computes them, and without them every activation is quantized per run
   */
  int8Ranges?: ReadonlyMap<string, readonly [number, number]>;
}

export const MODEL_INPUT = 'input';
export const TRUNK_OUTPUTS = ['feat0', 'feat1', 'feat2', 'feat3'] as const;
export const SAM2UNET_OUTPUTS = ['out', 'out1', 'out2'] as const;

/** Output channels of a SAM2-UNet state dict (its head's weight rows). */
export function headChannels(weights: StateDict): number | undefined {
  return weights.get('head.weight')?.shape[0];
}

function weightSource(weights: StateDict | Weights, origin?: string): Weights {
  return weights instanceof Weights ? weights : new Weights(weights, origin);
}

export function buildTrunkGraph(config: HieraConfig, weights: StateDict | Weights, opts: BuildOptions): Graph {
  const g = new Graph();
  g.inferenceOnly = !opts.primitiveOnly;
  const input = g.input(MODEL_INPUT, 'float32', ['batch', 3, opts.height, opts.width]);
  const { features } = buildHieraTrunk(g, input, config, weightSource(weights, opts.origin), BARE_TRUNK_KEYS, opts.height, opts.width);
  features.forEach((f, i) => g.output(TRUNK_OUTPUTS[i]!, f));
  return g;
}

export function buildSam2UNetGraph(config: HieraConfig, weights: StateDict | Weights, opts: BuildOptions): Graph {
  const w = weightSource(weights, opts.origin);
  const outChannels = opts.outChannels ?? headChannels(w.tensors) ?? 1;
  const g = new Graph();
  g.inferenceOnly = !opts.primitiveOnly;
  const input = g.input(MODEL_INPUT, 'float32', ['batch', 3, opts.height, opts.width]);
  const outs = buildSam2UNet(g, input, config, w, opts.height, opts.width, { outChannels, foldBatchNorm: opts.foldBatchNorm ?? true });
  g.output('out', outs.out);
  g.output('out1', outs.out1);
  g.output('out2', outs.out2);
  return g;
}

/**
 * Layers an int8 graph keeps in float32: the patch embedding (three input channels, a sliver of the
 * work, and every later layer inherits its error) and the heads (three output channels: the logits
 * the thresholds read).
 */
export function keepFloatInInt8(weightName: string): boolean {
  return weightName.includes('patch_embed.') || /^(head|side1|side2)\./.test(weightName);
}

/** The float32 graph of the model, in the precision asked for (weights rewritten, see onnx/quantize.ts). */
export function buildGraph(kind: ModelKind, config: HieraConfig, weights: StateDict | Weights, opts: BuildOptions): Graph {
  return buildGraphCounted(kind, config, weights, opts).graph;
}

/** buildGraph, with the float32 graph's FLOPs of one image (the work an int8 graph stands for). */
export function buildGraphCounted(kind: ModelKind, config: HieraConfig, weights: StateDict | Weights, opts: BuildOptions): { graph: Graph; flops: number } {
  const graph = kind === 'trunk' ? buildTrunkGraph(config, weights, opts) : buildSam2UNetGraph(config, weights, opts);
  const flops = graphFlops(graph, { batch: 1 });
  const precision = opts.precision ?? 'float32';
  if (precision !== 'float32' && opts.primitiveOnly) throw new Error(`a ${precision} graph is for inference; training graphs stay float32`);
  // every precision: one Linear per part is faster than a Linear and a Split on the CPU (and no slower elsewhere)
  if (graph.inferenceOnly) splitProjections(graph);
  if (precision === 'int8') quantizeInt8(graph, { keepFloat: keepFloatInInt8, weights: opts.weightEncoding ?? defaultWeightEncoding(), ...(opts.int8Ranges ? { ranges: opts.int8Ranges } : {}) });
  else if (precision === 'float16') convertToFloat16(graph);
  return { graph, flops };
}

// ---- cache ----

/** Bumped whenever the graph a given (config, size, weights) builds changes. */
const GRAPH_VERSION = 7;

/** Cache size limit: $SAM2UNET_CACHE_MAX_MB, default 8 GB (a hiera_l model is ≈ 0.9 GB). */
export function cacheLimitBytes(): number {
  const mb = Number(process.env.SAM2UNET_CACHE_MAX_MB);
  return (Number.isFinite(mb) && mb > 0 ? mb : 8192) * 1024 * 1024;
}

/**
 * Deletes the least recently used models (by mtime, refreshed on every hit) until the cache fits
 * its limit; `keep` is never deleted. Failures are ignored: the cache is an optimisation.
 */
export async function pruneCache(dir: string, keep: string, limit = cacheLimitBytes()): Promise<string[]> {
  const { readdir, stat, rm } = await import('node:fs/promises');
  const removed: string[] = [];
  try {
    const entries = await Promise.all(
      (await readdir(dir)).filter((f) => f.endsWith('.onnx')).map(async (f) => {
        const path = join(dir, f);
        const s = await stat(path);
        const data = await stat(`${path}.data`).catch(() => undefined);
        return { path, size: s.size + (data?.size ?? 0), mtime: s.mtimeMs };
      }),
    );
    let total = entries.reduce((a, e) => a + e.size, 0);
    for (const e of entries.sort((a, b) => a.mtime - b.mtime)) {
      if (total <= limit) break;
      if (e.path === keep) continue;
      await rm(`${e.path}.json`, { force: true });
      await rm(e.path, { force: true });
      await rm(`${e.path}.data`, { force: true });
      removed.push(e.path);
      total -= e.size;
    }
  } catch {
    // a cache we cannot list or prune is still usable
  }
  return removed;
}

export function defaultCacheDir(): string {
  return process.env.SAM2UNET_CACHE || join(homedir(), '.cache', 'sam2unet-workstation');
}

/** sha256 over the weights' names, shapes and bytes, in key order. */
export function weightsHash(weights: StateDict): string {
  const h = createHash('sha256');
  for (const key of [...weights.keys()].sort()) {
    const t = weights.get(key)!;
    h.update(`${key}:${t.shape.join('x')};`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** The calibrated ranges an int8 SAM2-UNet graph of these weights holds its uint8 maps at (model/calibrate.ts). */
export async function int8Calibration(config: HieraConfig, weights: StateDict | Weights, opts: BuildOptions): Promise<Map<string, readonly [number, number]>> {
  const float = buildSam2UNetGraph(config, weights, opts);
  splitProjections(float);
  return calibrateStaticRanges(float, MODEL_INPUT, keepFloatInInt8, opts.height, opts.width);
}

export function cacheKey(kind: ModelKind, config: HieraConfig, opts: BuildOptions, weightsSha: string): string {
  const precision = opts.precision ?? 'float32';
  const weights = precision === 'int8' ? (opts.weightEncoding ?? defaultWeightEncoding()) : null;
  // ranges given by the caller (none: every activation quantized per run) make another graph than the calibration's
  const calibration = precision !== 'int8' ? null : opts.int8Ranges ? createHash('sha256').update(JSON.stringify([...opts.int8Ranges])).digest('hex') : CALIBRATION_ID;
  const identity = JSON.stringify({ v: GRAPH_VERSION, opset: OPSET, kind, config, h: opts.height, w: opts.width, outChannels: opts.outChannels ?? null, fold: opts.foldBatchNorm ?? true, primitive: opts.primitiveOnly ?? false, weightsSha, precision, weights, calibration });
  return createHash('sha256').update(identity).digest('hex').slice(0, 32);
}

export interface BuiltModel {
  kind: ModelKind;
  /** a path to the .onnx file (when cached) or the model bytes */
  source: string | Uint8Array;
  outputs: readonly string[];
  /** FLOPs of one image (batch 1) of the float32 graph: an int8 or float16 graph does the same work in fewer bits */
  flops: number;
  /** true when the model came from the disk cache without building */
  cached: boolean;
  buildMs: number;
}

export interface EngineOptions extends BuildOptions {
  /** false: no disk cache (the model is returned as bytes); a string: the cache directory */
  cache?: boolean | string;
}

/**
 * Builds the ONNX model of a checkpoint's network, or finds it in the disk cache. With the cache on,
 * the model is streamed to disk without joining (no extra copy of the weights) and `source` is its path.
 */
export async function buildModel(kind: ModelKind, config: HieraConfig, weights: StateDict | Weights, opts: EngineOptions): Promise<BuiltModel> {
  const started = performance.now();
  const outputs = kind === 'trunk' ? TRUNK_OUTPUTS : SAM2UNET_OUTPUTS;
  const cacheDir = opts.cache === false ? undefined : typeof opts.cache === 'string' ? opts.cache : defaultCacheDir();
  let file: string | undefined;
  if (cacheDir) {
    const identity = weights instanceof RandomWeights ? weights.identity : weightsHash(weights instanceof Weights ? weights.tensors : weights);
    const key = cacheKey(kind, config, opts, identity);
    file = join(cacheDir, `${kind}-${opts.height}x${opts.width}-${opts.precision ?? 'float32'}-${key}.onnx`);
    const meta = `${file}.json`;
    // the metadata is written last: its presence means the model and its weights file are complete
    if (existsSync(file) && existsSync(`${file}.data`) && existsSync(meta)) {
      const { readFile, utimes } = await import('node:fs/promises');
      try {
        const info = JSON.parse(await readFile(meta, 'utf8')) as { flops: number };
        const now = new Date();
        await utimes(file, now, now).catch(() => undefined);
        return { kind, source: file, outputs, flops: info.flops, cached: true, buildMs: performance.now() - started };
      } catch {
        // unreadable metadata: rebuild below
      }
    }
  }
  let buildOpts: BuildOptions = opts;
  if (kind === 'sam2unet' && (opts.precision ?? 'float32') === 'int8' && !opts.int8Ranges) buildOpts = { ...opts, int8Ranges: await int8Calibration(config, weights, opts) };
  const { graph, flops } = buildGraphCounted(kind, config, weights, buildOpts);
  const docString = `${kind} ${opts.height}x${opts.width} ${opts.precision ?? 'float32'}`;
  if (file) {
    // weights in a side file that ONNX Runtime memory-maps: no protobuf parse of ~1 GB, no copy
    const model = serializeModel(graph, { docString, externalData: { location: basename(`${file}.data`) } });
    try {
      await writeFileAtomic(`${file}.data`, model.dataChunks!);
      await writeFileAtomic(file, model.chunks);
      await writeFileAtomic(`${file}.json`, JSON.stringify({ kind, config, height: opts.height, width: opts.width, precision: opts.precision ?? 'float32', flops, bytes: model.byteLength + model.dataByteLength! }));
    } catch (err) {
      throw new UserError(`cannot write the model cache in ${cacheDir} (${(err as Error).message}); set SAM2UNET_CACHE to a writable folder`);
    }
    await pruneCache(cacheDir!, file);
    return { kind, source: file, outputs, flops, cached: false, buildMs: performance.now() - started };
  }
  return { kind, source: joinChunks(serializeModel(graph, { docString })), outputs, flops, cached: false, buildMs: performance.now() - started };
}

/** The SAM2-UNet model (out, out1, out2) for a checkpoint's weights. */
export function buildSam2UNetModel(config: HieraConfig, weights: StateDict | Weights, opts: EngineOptions): Promise<BuiltModel> {
  return buildModel('sam2unet', config, weights, opts);
}
