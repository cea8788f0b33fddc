/**
 * Running train-step graphs: the optimiser state (trainable weights, AdamW moments, BatchNorm
 * statistics) lives here between steps and is fed to / read back from one session run per step.
 */
import ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { joinChunks, serializeModel } from '../onnx/writer.ts';
import type { HieraConfig } from '../model/config.ts';
import { tensor, type StateDict, type Tensor } from '../model/tensor.ts';
import { ADAMW_DEFAULTS } from './adamw.ts';
import type { LossVariant } from './loss.ts';
import type { LoraOptions } from './defaults.ts';
import { buildTrainGraph, momentName, nextMomentName, type Strategy, type TrainGraph, type TrainGraphOptions } from './train-graph.ts';

export interface TrainStepSessionOptions extends TrainGraphOptions {
  config: HieraConfig;
  weights: StateDict;
  threads?: number;
}

export interface StepOutputs {
  /** [l0, l1, l2, sum] */
  loss: Float32Array;
  tensors: Map<string, Tensor>;
}

/** Frozen weights above which a train session does not prepack them (see trainSessionOptions). */
export const PREPACK_LIMIT_BYTES = 256 * 2 ** 20;

/**
 * How a train-step graph is run (the trainer and the benchmark alike).
 * - No memory pattern: ONNX Runtime would lay every intermediate of the step out in one block
 *   planned from the first run, and for a graph whose backward pass holds the forward activations
 *   that block is far larger than what the arena reuses on demand (hiera_t, batch 4, 352²: 4.2 GB
 *   peak RSS with it, 2.5 GB without, the same CPU time).
 * - Prepacked weights only for small frozen trunks: the forward Gemm and the backward one read a
 *   frozen weight in two layouts, so prepacking keeps two packed copies beside the weight itself.
 *   That saves ~5 % of a hiera_t step; for hiera_l it is 1.7 GB (peak RSS 7.2 → 6.2 GB at batch 2)
 *   for ~3 %, and packing on the fly costs little next to GEMMs of thousands of token rows.
 * - Worker threads that sleep between ops instead of spinning: a step is ~9,000 ops, and spinning
 *   threads kept both cores busy between them. On this 2-core machine shared with other work
 *   (load 11–15) spinning cost 25 % more CPU per hiera_t step (7.2–7.7 s against 5.7–6.0 s at
 *   2 threads) for no shorter step (wall 19–22 s against 16–21 s), and it takes those cores
 *   from the app's other lanes; on an idle machine waking the threads costs a few percent.
 */
export function trainSessionOptions(threads: number, frozenBytes = 0): ort.InferenceSession.SessionOptions {
  const session: Record<string, unknown> = { intra_op: { allow_spinning: '0' } };
  if (frozenBytes > PREPACK_LIMIT_BYTES) session.disable_prepacking = '1';
  return { graphOptimizationLevel: 'all', intraOpNumThreads: threads, executionProviders: ['cpu'], enableMemPattern: false, extra: { session } };
}

/**
 * A compiled train step plus the state it updates. `weights` is updated in place after every
 * step (trainable parameters and BatchNorm statistics), so it is always a complete, saveable
 * state_dict; the moments are kept alongside.
 */
export class TrainStepSession {
  readonly moments = new Map<string, { m: Float32Array; v: Float32Array }>();

  private constructor(
    readonly plan: TrainGraph,
    private readonly session: ort.InferenceSession,
    readonly weights: StateDict,
    private readonly opts: TrainStepSessionOptions,
  ) {
    for (const name of plan.trainable) {
      const n = weights.get(name)!.data.length;
      this.moments.set(name, { m: new Float32Array(n), v: new Float32Array(n) });
    }
  }

  static async create(opts: TrainStepSessionOptions): Promise<TrainStepSession> {
    const plan = buildTrainGraph(opts.config, opts.weights, opts);
    const bytes = joinChunks(serializeModel(plan.graph, { name: 'sam2unet_train_step' }));
    const session = await ort.InferenceSession.create(bytes, trainSessionOptions(opts.threads ?? 0, plan.frozenCount * 4));
    return new TrainStepSession(plan, session, opts.weights, opts);
  }

  /** One optimiser step; `step` is 1-based (AdamW's bias correction). */
  async run(input: Float32Array, mask: Float32Array, lr: number, step: number): Promise<StepOutputs> {
    const { batch, height, width, outChannels } = this.opts;
    const feeds: Record<string, ort.Tensor> = {
      input: new ort.Tensor('float32', input, [batch, 3, height, width]),
      mask: new ort.Tensor('float32', mask, [batch, outChannels, height, width]),
      lr: new ort.Tensor('float32', Float32Array.of(lr), []),
      step: new ort.Tensor('float32', Float32Array.of(step), []),
    };
    const feed = (name: string, data: Float32Array, shape: number[]): void => {
      feeds[name] = new ort.Tensor('float32', data, shape);
    };
    for (const name of [...this.plan.trainable, ...this.plan.buffers]) {
      const t = this.weights.get(name)!;
      feed(name, t.data, t.shape);
    }
    for (const [name, state] of this.moments) {
      const shape = this.weights.get(name)!.shape;
      feed(momentName('m', name), state.m, shape);
      feed(momentName('v', name), state.v, shape);
    }
    const results = await this.session.run(feeds);
    const tensors = new Map<string, Tensor>();
    for (const [name, value] of Object.entries(results)) tensors.set(name, tensor([...value.dims], value.data as Float32Array));
    for (const name of this.plan.trainable) {
      const shape = this.weights.get(name)!.shape;
      this.weights.set(name, tensor(shape, tensors.get(`after.${name}`)!.data));
      this.moments.set(name, { m: tensors.get(nextMomentName('m', name))!.data, v: tensors.get(nextMomentName('v', name))!.data });
    }
    for (const name of this.plan.buffers) this.weights.set(name, tensor(this.weights.get(name)!.shape, tensors.get(`after.${name}`)!.data));
    bumpBatchCounters(this.weights, this.plan.buffers);
    return { loss: tensors.get('loss')!.data, tensors };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * BatchNorm's num_batches_tracked counts forward passes in train mode; keep the state_dict honest.
 * Only the BatchNorms the graph runs count (their running statistics are its buffers): up4 never
 * runs, so PyTorch leaves its counters alone.
 */
function bumpBatchCounters(weights: StateDict, buffers: readonly string[]): void {
  for (const buffer of buffers) {
    if (!buffer.endsWith('.running_mean')) continue;
    const t = weights.get(`${buffer.slice(0, -'running_mean'.length)}num_batches_tracked`);
    if (t) t.data[0] = t.data[0]! + 1;
  }
}

export interface TrainStepRequest {
  config: HieraConfig;
  weights: StateDict;
  input: Tensor;
  mask: Tensor;
  lr?: number;
  weightDecay?: number;
  strategy?: Strategy;
  lora?: LoraOptions;
  loss?: LossVariant;
}

export interface TrainStepResult {
  /** loss, out, out1, out2, grad.<param>, after.<param>, after.<bn buffer>: the golden layout */
  tensors: Map<string, Tensor>;
  plan: TrainGraph;
}

/** One step from a checkpoint's state with a fresh optimiser (the train-step command). */
export async function runTrainStep(req: TrainStepRequest): Promise<TrainStepResult> {
  const [batch, channels, height, width] = req.input.shape as [number, number, number, number];
  if (req.input.shape.length !== 4 || channels !== 3) throw new UserError(`input must be (B, 3, H, W), got [${req.input.shape}]`);
  const [mb, outChannels, mh, mw] = req.mask.shape as [number, number, number, number];
  if (req.mask.shape.length !== 4 || mb !== batch || mh !== height || mw !== width) {
    throw new UserError(`mask must be (${batch}, C, ${height}, ${width}), got [${req.mask.shape}]`);
  }
  const weights: StateDict = new Map([...req.weights].map(([k, t]) => [k, tensor([...t.shape], Float32Array.from(t.data))]));
  const session = await TrainStepSession.create({
    config: req.config,
    weights,
    batch,
    height,
    width,
    outChannels,
    strategy: req.strategy ?? 'adapter',
    lora: req.lora,
    loss: req.loss,
    adamw: { ...ADAMW_DEFAULTS, weightDecay: req.weightDecay ?? ADAMW_DEFAULTS.weightDecay },
    emitGradients: true,
  });
  try {
    const { tensors } = await session.run(req.input.data, req.mask.data, req.lr ?? 1e-3, 1);
    const result = new Map<string, Tensor>();
    for (const [name, t] of tensors) {
      if (name.startsWith('next.')) continue;
      result.set(name, t);
    }
    // running statistics of BatchNorms the forward pass never reaches (up4) stay as they were
    for (const [key, t] of req.weights) {
      if (/running_(mean|var)$/.test(key) && !result.has(`after.${key}`)) result.set(`after.${key}`, t);
    }
    return { tensors: result, plan: session.plan };
  } finally {
    await session.dispose();
  }
}
