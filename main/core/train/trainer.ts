/**
 * The trainer: labelled studies → train-step graph runs with a cosine schedule, validation Dice
 * per volume every epoch, atomic checkpoints every N steps, exact resume, cancellation, progress
 * events and a CSV + JSON log. Everything random derives from (seed, epoch, step), so a run that
 * is killed and resumed ends with the same weights as one that never stopped.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { CancelledError, FileError, UserError } from '../errors.ts';
import { regionsFor, type RegionKind } from '../metrics/regions.ts';
import { readCheckpoint, sam2UNetMetadata } from '../model/checkpoint.ts';
import type { HieraConfig } from '../model/config.ts';
import { parameterCounts, trunkKeyToSam2UNet } from '../model/keys.ts';
import { readSafetensorsFile, writeSafetensors } from '../model/safetensors.ts';
import { expandChannels, type TestTimeAugmentation } from '../model/run-settings.ts';
import { tensor, type StateDict, type Tensor } from '../model/tensor.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { ADAMW_DEFAULTS } from './adamw.ts';
import { epochSamples, loadTrainingStudies, makeBatch, type SamplingOptions, type TrainingStudy } from './data.ts';
import { initLora, initSam2UNetWeights, mergeLora } from './init.ts';
import type { LossVariant } from './loss.ts';
import { cosineLearningRate } from './schedule.ts';
import { LORA_DEFAULTS, TRAIN_DEFAULTS, type LoraOptions } from './defaults.ts';
import type { Strategy } from './train-graph.ts';
import { TrainStepSession } from './train-step.ts';
import { PROVENANCE_KEY, finiteOnly, type Provenance } from './provenance.ts';

export interface TrainOptions {
  data: string[];
  val?: string[];
  /** a SAM2-UNet checkpoint, or a fresh model of this configuration */
  init: { checkpoint: string; config?: HieraConfig } | { fresh: HieraConfig };
  out: string;
  strategy: Strategy;
  lora?: LoraOptions;
  /** give epochs or steps; steps wins */
  epochs?: number;
  steps?: number;
  batch: number;
  lr: number;
  weightDecay: number;
  size: [number, number];
  channels?: string[];
  regions: RegionKind;
  /** written into the checkpoints as the run setting (run-settings.ts); absent = not written (one view) */
  tta?: TestTimeAugmentation;
  seed: number;
  emptyRatio: number;
  /** at most this many tumour slices per study and epoch (data.ts SamplingOptions) */
  tumourSlicesPerStudy?: number;
  /** the share of empty draws from the edge slices (data.ts SamplingOptions) */
  edgeShare?: number;
  checkpointEvery: number;
  loss: LossVariant;
  resume: boolean;
  threads?: number;
  /** run validation every this many epochs (default 1); 0 = never */
  validateEvery?: number;
  /**
   * stop after this many seconds of training (counted from the first step), saving the model;
   * the learning rate then anneals over the budget (or the steps, whichever ends first)
   */
  maxSeconds?: number;
  /** studies scored with the starting model before the first step and with the trained model after the last */
  heldOut?: string[];
  /** what the checkpoint's provenance names as the starting model (default its path) */
  baseModel?: string;
  /** bytes the training studies may take in memory (default: half the physical memory; data.ts) */
  memoryBudget?: number;
}



export interface StepEvent {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number[];
  lr: number;
  imagesPerSecond: number;
  etaSeconds: number;
}

export interface ValidationResult {
  epoch: number;
  step: number;
  /** per study: region → Dice of the whole volume */
  studies: { name: string; dice: Record<string, number> }[];
  /** mean over studies per region */
  meanDice: Record<string, number>;
}

export interface TrainEvents {
  start?(info: { totalSteps: number; stepsPerEpoch: number; trainable: number; frozen: number; resumedFrom: number; studies: number; slices: number }): void;
  step?(e: StepEvent): void;
  validation?(v: ValidationResult): void;
  /** the held-out studies scored with the starting model ('before') or the trained one ('after') */
  heldOut?(phase: 'before' | 'after', v: ValidationResult): void;
  checkpoint?(path: string, step: number): void;
  message?(text: string): void;
}

export interface TrainResult {
  steps: number;
  model: string;
  lastValidation?: ValidationResult;
  heldOut?: { before: ValidationResult; after: ValidationResult };
  /** the time budget ended the run before its last step */
  stoppedByBudget?: boolean;
  provenance: Provenance;
}

const STATE_FILE = 'state.json';

interface SavedState {
  step: number;
  weights: string;
  optimizer: string;
  fingerprint: Record<string, unknown>;
}

/** What must not change between a run and its resumption. */
function fingerprint(o: TrainOptions): Record<string, unknown> {
  return {
    strategy: o.strategy,
    lora: o.strategy === 'lora' ? (o.lora ?? LORA_DEFAULTS) : null,
    batch: o.batch,
    lr: o.lr,
    weightDecay: o.weightDecay,
    size: o.size,
    channels: o.channels ?? null,
    regions: o.regions,
    seed: o.seed,
    emptyRatio: o.emptyRatio,
    tumourSlicesPerStudy: o.tumourSlicesPerStudy ?? null,
    edgeShare: o.edgeShare ?? null,
    loss: o.loss,
    epochs: o.steps === undefined ? (o.epochs ?? null) : null,
    steps: o.steps ?? null,
  };
}

function fingerprintDifferences(saved: Record<string, unknown>, now: Record<string, unknown>): string[] {
  return Object.keys(now).filter((k) => JSON.stringify(saved[k] ?? null) !== JSON.stringify(now[k])).map((k) => `${k} was ${JSON.stringify(saved[k] ?? null)}, now ${JSON.stringify(now[k])}`);
}

/** Steps per epoch and in the whole run, given the slices one epoch draws. */
function runLength(o: Pick<TrainOptions, 'batch' | 'steps' | 'epochs'>, slicesPerEpoch: number): { stepsPerEpoch: number; totalSteps: number } {
  const stepsPerEpoch = Math.floor(slicesPerEpoch / o.batch);
  return { stepsPerEpoch, totalSteps: o.steps ?? (o.epochs ?? TRAIN_DEFAULTS.epochs) * stepsPerEpoch };
}

/**
 * The sequences the model was trained on, in channel order, as the study names them: what every
 * checkpoint records so that segmenting feeds the same (--channels, else the first study's choice).
 */
export function trainedChannels(o: Pick<TrainOptions, 'channels'>, studies: readonly TrainingStudy[]): string[] {
  if (o.channels?.length) return expandChannels(o.channels);
  const first = studies[0]!;
  return first.channels.map((v) => Object.entries(first.study.sequences).find(([, s]) => s === v)?.[0] ?? v.meta.id);
}

async function initialWeights(o: TrainOptions, outChannels: number): Promise<{ config: HieraConfig; weights: StateDict }> {
  if ('fresh' in o.init) return { config: o.init.fresh, weights: initSam2UNetWeights(o.init.fresh, outChannels, o.seed) };
  const ck = await readCheckpoint(o.init.checkpoint, o.init.config ? { config: o.init.config } : {});
  if (ck.kind === 'trunk') {
    // The official start: a pretrained SAM2 Hiera trunk, fresh adapters and decoder.
    const weights = initSam2UNetWeights(ck.config, outChannels, o.seed);
    for (const [key, t] of ck.weights) weights.set(trunkKeyToSam2UNet(key), tensor([...t.shape], Float32Array.from(t.data)));
    return { config: ck.config, weights };
  }
  if (ck.outChannels !== outChannels) {
    throw new FileError(o.init.checkpoint, `its heads have ${ck.outChannels} output channel(s); ${o.regions} regions need ${outChannels}`);
  }
  // private copies: the trainer updates them in place
  return { config: ck.config, weights: new Map([...ck.weights].map(([k, t]) => [k, tensor([...t.shape], Float32Array.from(t.data))])) };
}

export async function train(o: TrainOptions, events: TrainEvents = {}, signal?: AbortSignal): Promise<TrainResult> {
  const regions = regionsFor(o.regions);
  const outChannels = regions.length;
  const checkpointDir = join(o.out, 'checkpoints');
  await mkdir(checkpointDir, { recursive: true });

  const sampling: SamplingOptions = { emptyRatio: o.emptyRatio, tumourSlicesPerStudy: o.tumourSlicesPerStudy, edgeShare: o.edgeShare, seed: o.seed };
  const draws = {
    sampling,
    epochs(slicesPerEpoch: number): number {
      const { stepsPerEpoch, totalSteps } = runLength(o, slicesPerEpoch);
      return stepsPerEpoch < 1 ? 1 : Math.ceil(totalSteps / stepsPerEpoch);
    },
  };
  const studies = await loadTrainingStudies(o.data, { channels: o.channels, regions: o.regions, memoryBudget: o.memoryBudget, draws });
  const partial = studies.filter((s) => s.stored);
  if (partial.length) {
    const drawn = partial.reduce((sum, s) => sum + s.stored!.size, 0);
    const brain = partial.reduce((sum, s) => sum + s.tumourSlices.length + s.emptySlices.length, 0);
    events.message?.(`the studies do not fit in memory whole: ${partial.length} of ${studies.length} keep only the slices this run draws (${drawn} of their ${brain} with brain)`);
  }
  const valStudies = o.val?.length ? await loadTrainingStudies(o.val, { channels: o.channels, regions: o.regions }) : [];
  const heldOutStudies = o.heldOut?.length ? await loadTrainingStudies(o.heldOut, { channels: o.channels, regions: o.regions }) : [];
  const overlap = heldOutStudies.filter((h) => studies.some((s) => s.study.name === h.study.name)).map((h) => h.study.name);
  if (overlap.length) throw new UserError(`held-out studies must not be trained on: ${overlap.join(', ')} ${overlap.length === 1 ? 'is' : 'are'} in both`);
  const slicesPerEpoch = epochSamples(studies, 0, sampling).length;
  const { stepsPerEpoch, totalSteps } = runLength(o, slicesPerEpoch);
  if (stepsPerEpoch < 1) throw new UserError(`the data gives ${slicesPerEpoch} training slices per epoch, fewer than one batch of ${o.batch}`);

  const initial = await initialWeights(o, outChannels);
  const { config } = initial;
  // the starting model on the held-out studies, before anything changes its weights
  let heldOutBefore: ValidationResult | undefined;
  if (heldOutStudies.length) {
    events.message?.(`scoring the starting model on ${heldOutStudies.length} held-out stud${heldOutStudies.length === 1 ? 'y' : 'ies'}`);
    heldOutBefore = await validate(config, initial.weights, undefined, heldOutStudies, o, 0, 0);
    events.heldOut?.('before', heldOutBefore);
  }
  const run = { size: o.size, channels: trainedChannels(o, studies), regions: o.regions, ...(o.tta ? { tta: o.tta } : {}) };
  const checkpointMetadata = (extra: Record<string, string>) => sam2UNetMetadata(config, outChannels, run, extra);
  let { weights } = initial;
  const lora = o.strategy === 'lora' ? (o.lora ?? LORA_DEFAULTS) : undefined;
  if (lora) initLora(weights, config, lora, o.seed);
  let startStep = 0;
  let moments: Map<string, { m: Float32Array; v: Float32Array }> | undefined;
  const statePath = join(checkpointDir, STATE_FILE);
  if (o.resume && existsSync(statePath)) {
    const saved = JSON.parse(await readFile(statePath, 'utf8')) as SavedState;
    const differences = fingerprintDifferences(saved.fingerprint ?? {}, fingerprint(o));
    if (differences.length) throw new UserError(`${o.out}: cannot resume with different training options (${differences.join('; ')})`);
    const restored = await readSafetensorsFile(join(checkpointDir, saved.weights));
    weights = restored.tensors;
    const optim = await readSafetensorsFile(join(checkpointDir, saved.optimizer));
    moments = new Map();
    for (const [key, t] of optim.tensors) {
      const m = /^adam\.(m|v)\.(.+)$/.exec(key);
      if (!m) continue;
      const entry = moments.get(m[2]!) ?? { m: new Float32Array(0), v: new Float32Array(0) };
      entry[m[1] as 'm' | 'v'] = t.data;
      moments.set(m[2]!, entry);
    }
    startStep = saved.step;
    events.message?.(`resuming from step ${startStep} (${saved.weights})`);
  } else if (o.resume) {
    events.message?.(`nothing to resume in ${checkpointDir}: starting from the beginning`);
  }

  const session = await TrainStepSession.create({
    config,
    weights,
    batch: o.batch,
    height: o.size[0],
    width: o.size[1],
    outChannels,
    strategy: o.strategy,
    lora,
    loss: o.loss,
    adamw: { ...ADAMW_DEFAULTS, weightDecay: o.weightDecay },
    threads: o.threads,
  });
  if (moments) {
    for (const [name, state] of moments) if (session.moments.has(name)) session.moments.set(name, state);
  }
  const counts = parameterCounts(config, outChannels);
  events.start?.({
    totalSteps,
    stepsPerEpoch,
    trainable: session.plan.trainableCount,
    frozen: o.strategy === 'full' ? 0 : counts.trunk,
    resumedFrom: startStep,
    studies: studies.length,
    slices: slicesPerEpoch,
  });

  const log: Record<string, unknown>[] = [];
  const logCsv = ['step,epoch,lr,loss,loss_out,loss_out1,loss_out2,images_per_second,seconds'];
  let lastValidation: ValidationResult | undefined;
  const started = performance.now();
  let samples = epochSamples(studies, Math.floor(startStep / stepsPerEpoch), sampling);
  let samplesEpoch = Math.floor(startStep / stepsPerEpoch);

  let stepsDone = totalSteps;
  let stoppedByBudget = false;
  let trainingStarted = 0;

  const saveCheckpoint = async (step: number): Promise<string> => {
    const name = `step-${String(step).padStart(6, '0')}`;
    const meta = checkpointMetadata({ step: String(step), strategy: o.strategy });
    await writeSafetensors(join(checkpointDir, `${name}.safetensors`), session.weights, meta);
    const optimizer = new Map<string, Tensor>();
    for (const [key, state] of session.moments) {
      const shape = session.weights.get(key)!.shape;
      optimizer.set(`adam.m.${key}`, tensor(shape, state.m));
      optimizer.set(`adam.v.${key}`, tensor(shape, state.v));
    }
    await writeSafetensors(join(checkpointDir, `${name}.optim.safetensors`), optimizer, { step: String(step) });
    // state.json is the commit point: it names files that are already complete on disk
    const state: SavedState = { step, weights: `${name}.safetensors`, optimizer: `${name}.optim.safetensors`, fingerprint: fingerprint(o) };
    await writeFileAtomic(join(checkpointDir, STATE_FILE), JSON.stringify(state, null, 2));
    events.checkpoint?.(join(checkpointDir, `${name}.safetensors`), step);
    return name;
  };

  const writeLogs = async (): Promise<void> => {
    await writeFileAtomic(join(o.out, 'train-log.csv'), `${logCsv.join('\n')}\n`);
    await writeFileAtomic(join(o.out, 'train-log.json'), JSON.stringify({ options: { ...o, init: 'fresh' in o.init ? { fresh: o.init.fresh } : o.init }, steps: log, validation: lastValidation }, null, 2));
  };

  try {
    for (let step = startStep; step < totalSteps; step++) {
      if (signal?.aborted) {
        await saveCheckpoint(step);
        await writeLogs();
        throw new CancelledError();
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      if (epoch !== samplesEpoch) {
        samples = epochSamples(studies, epoch, sampling);
        samplesEpoch = epoch;
      }
      const within = step - epoch * stepsPerEpoch;
      const refs = samples.slice(within * o.batch, (within + 1) * o.batch);
      const batch = makeBatch(studies, refs, o.size, o.regions, { seed: o.seed, step });
      if (!trainingStarted) trainingStarted = performance.now();
      const trainingSeconds = (performance.now() - trainingStarted) / 1000;
      // with a time budget the schedule anneals over whichever ends first, the steps or the budget
      const lr = o.maxSeconds ? cosineLearningRate(Math.max(step / totalSteps, trainingSeconds / o.maxSeconds), 1, o.lr) : cosineLearningRate(step, totalSteps, o.lr);
      const t0 = performance.now();
      const { loss } = await session.run(batch.input, batch.mask, lr, step + 1);
      const seconds = (performance.now() - t0) / 1000;
      const done = step + 1 - startStep;
      const elapsed = (performance.now() - started) / 1000;
      const imagesPerSecond = (done * o.batch) / elapsed;
      const lossValues = Array.from(loss);
      if (!lossValues.every(Number.isFinite)) throw new UserError(`training diverged at step ${step + 1} (loss ${lossValues.join(', ')}); try a lower --lr`);
      const etaSeconds = ((totalSteps - step - 1) * elapsed) / done;
      // a time budget ends the run before the steps do
      events.step?.({ step: step + 1, totalSteps, epoch, loss: lossValues, lr, imagesPerSecond, etaSeconds: o.maxSeconds ? Math.max(0, Math.min(etaSeconds, o.maxSeconds - (performance.now() - trainingStarted) / 1000)) : etaSeconds });
      log.push({ step: step + 1, epoch, lr, loss: lossValues[3], losses: lossValues.slice(0, 3), imagesPerSecond, seconds });
      logCsv.push([step + 1, epoch, lr, lossValues[3], ...lossValues.slice(0, 3), imagesPerSecond.toFixed(3), seconds.toFixed(3)].join(','));

      const endOfEpoch = (step + 1) % stepsPerEpoch === 0 || step + 1 === totalSteps;
      if ((step + 1) % o.checkpointEvery === 0 || step + 1 === totalSteps) await saveCheckpoint(step + 1);
      const every = o.validateEvery ?? 1;
      if (endOfEpoch && valStudies.length && every > 0 && ((epoch + 1) % every === 0 || step + 1 === totalSteps)) {
        lastValidation = await validate(config, session.weights, lora, valStudies, o, epoch, step + 1);
        events.validation?.(lastValidation);
        log.push({ validation: lastValidation });
      }
      if (endOfEpoch || (step + 1) % 10 === 0) await writeLogs();
      if (o.maxSeconds && (performance.now() - trainingStarted) / 1000 >= o.maxSeconds && step + 1 < totalSteps) {
        stepsDone = step + 1;
        stoppedByBudget = true;
        if ((step + 1) % o.checkpointEvery !== 0) await saveCheckpoint(step + 1);
        events.message?.(`the time budget of ${o.maxSeconds} s is spent: stopping after step ${step + 1} of ${totalSteps}`);
        break;
      }
    }
  } finally {
    await session.dispose();
  }
  const trainingSeconds = trainingStarted ? (performance.now() - trainingStarted) / 1000 : 0;
  await writeLogs();
  const model = join(o.out, 'model.safetensors');
  const finalWeights = lora ? mergeLora(session.weights, lora) : session.weights;
  let heldOut: TrainResult['heldOut'];
  if (heldOutBefore) {
    events.message?.('scoring the trained model on the held-out studies');
    const after = await validate(config, finalWeights, undefined, heldOutStudies, o, Math.floor((stepsDone - 1) / stepsPerEpoch), stepsDone);
    events.heldOut?.('after', after);
    heldOut = { before: heldOutBefore, after };
  }
  const provenance: Provenance = {
    baseModel: o.baseModel ?? ('fresh' in o.init ? 'fresh weights' : o.init.checkpoint),
    studies: studies.map((s) => s.study.name),
    heldOut: heldOutStudies.map((s) => s.study.name),
    strategy: o.strategy,
    steps: stepsDone,
    date: new Date().toISOString(),
    ...(trainingStarted ? { seconds: Math.round(trainingSeconds * 10) / 10 } : {}),
    ...(heldOut ? { heldOutDice: { before: finiteOnly(heldOut.before.meanDice), after: finiteOnly(heldOut.after.meanDice) } } : {}),
  };
  await writeSafetensors(model, finalWeights, checkpointMetadata({ steps: String(stepsDone), strategy: o.strategy, [PROVENANCE_KEY]: JSON.stringify(provenance) }));
  return { steps: stepsDone, model, lastValidation, ...(heldOut ? { heldOut } : {}), ...(stoppedByBudget ? { stoppedByBudget } : {}), provenance };
}

/** Dice per validation volume with the current weights (eval mode, BatchNorm running statistics). */
async function validate(
  config: HieraConfig,
  weights: StateDict,
  lora: LoraOptions | undefined,
  studies: readonly TrainingStudy[],
  o: TrainOptions,
  epoch: number,
  step: number,
): Promise<ValidationResult> {
  const [{ buildSam2UNetGraph }, { joinChunks, serializeModel }, { segmentStudy }, { sliceModelFromSession }] = await Promise.all([
    import('../model/engine.ts'),
    import('../onnx/writer.ts'),
    import('../jobs/segment.ts'),
    import('../jobs/slice-model.ts'),
  ]);
  const regions = regionsFor(o.regions);
  const evalWeights = lora ? mergeLora(weights, lora) : weights;
  const graph = buildSam2UNetGraph(config, evalWeights, { height: o.size[0], width: o.size[1], outChannels: regions.length });
  const session = await ort.InferenceSession.create(joinChunks(serializeModel(graph)), { graphOptimizationLevel: 'all', intraOpNumThreads: o.threads ?? 0 });
  const model = sliceModelFromSession(
    {
      provider: 'cpu',
      async run(feeds) {
        const input = feeds.input!;
        const out = await session.run({ input: new ort.Tensor('float32', input.data, [...input.dims]) });
        return { out: { dims: [...out.out!.dims], data: out.out!.data as Float32Array } };
      },
      dispose: () => session.release(),
    },
    { inputSize: o.size, outChannels: regions.length },
  );
  const results: ValidationResult['studies'] = [];
  try {
    for (const s of studies) {
      const outcome = await segmentStudy(s.study, model, { channels: o.channels, regions: o.regions, volumeMetrics: true, batchSize: 4 });
      const metrics = outcome.summary.metrics ?? {};
      results.push({ name: s.study.name, dice: Object.fromEntries(regions.map((r) => [r.name, metrics[r.name]?.dice ?? NaN])) });
    }
  } finally {
    await model.dispose();
  }
  const meanDice = Object.fromEntries(regions.map((r) => [r.name, results.reduce((sum, s) => sum + s.dice[r.name]!, 0) / results.length]));
  return { epoch, step, studies: results, meanDice };
}
