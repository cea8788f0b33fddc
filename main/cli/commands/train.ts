import { UserError } from '../../core/errors.ts';
import { EDGE_SLICE_AREA, TRAIN_DEFAULTS } from '../../core/train/defaults.ts';
import { defineCommand, listOption, numberOption, POSITIVE_INT, rangedOption, requireOption, SEED_RANGE, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';
import { createProgress } from '../progress.ts';

export default defineCommand({
  name: 'train',
  summary: 'fine-tune SAM2-UNet on labelled studies (adapter, LoRA or full), with validation, checkpoints and resume',
  usage: 'train --data <folder of studies> [--val <folder>] --checkpoint <init> --out <dir> [--strategy adapter|lora|full] [--epochs N | --steps N] [--batch 12] [--lr 1e-3] [--size 352] [--channels flair,t1ce,t2] [--regions brats|binary] [--resume] [--max-seconds N] [--held-out <folder>]',
  options: {
    data: { type: 'string', description: 'folder of labelled studies (BraTS folders with <case>_seg), or one study; several separated by commas. Studies are kept in memory; past half the physical memory each keeps only the slices the run draws', valueName: 'folder' },
    val: { type: 'string', description: 'folder of validation studies: Dice per volume after every epoch', valueName: 'folder' },
    checkpoint: { type: 'string', description: 'SAM2-UNet checkpoint to start from (.pth or .safetensors)', valueName: 'file' },
    config: { type: 'string', description: 'Hiera preset or JSON: with --checkpoint, its configuration; without, start from fresh weights of this configuration', valueName: 'preset|file' },
    out: { type: 'string', description: 'output folder: checkpoints/, train-log.csv, train-log.json, model.safetensors', valueName: 'dir' },
    strategy: { type: 'string', description: 'adapter (official: adapters + decoder), lora (LoRA on attn.qkv/proj + adapters + decoder) or full', valueName: 'name' },
    'lora-rank': { type: 'string', description: `LoRA rank (default ${TRAIN_DEFAULTS.loraRank})`, valueName: 'r' },
    'lora-alpha': { type: 'string', description: `LoRA alpha (default ${TRAIN_DEFAULTS.loraAlpha})`, valueName: 'alpha' },
    epochs: { type: 'string', description: `epochs (default ${TRAIN_DEFAULTS.epochs})`, valueName: 'N' },
    steps: { type: 'string', description: 'optimiser steps (overrides --epochs)', valueName: 'N' },
    batch: { type: 'string', description: `batch size (default ${TRAIN_DEFAULTS.batch}, as the official recipe)`, valueName: 'N' },
    lr: { type: 'string', description: `peak learning rate, cosine-annealed to 1e-7 (default ${TRAIN_DEFAULTS.lr})`, valueName: 'number' },
    'weight-decay': { type: 'string', description: `AdamW weight decay (default ${TRAIN_DEFAULTS.weightDecay})`, valueName: 'number' },
    size: { type: 'string', description: `model input size, a multiple of 32 (default: what --checkpoint says, else ${TRAIN_DEFAULTS.size})`, valueName: 'pixels' },
    channels: { type: 'string', description: 'the three input sequences (default: what --checkpoint says, else flair,t1ce,t2; one name is replicated)', valueName: 'a,b,c' },
    regions: { type: 'string', description: 'brats (WT/TC/ET, 3 channels) or binary (1 channel) (default: what --checkpoint says, else brats)', valueName: 'kind' },
    seed: { type: 'string', description: `seed of sampling, augmentation and fresh weights (default ${TRAIN_DEFAULTS.seed})`, valueName: 'N' },
    'empty-ratio': { type: 'string', description: `slices without tumour per tumour slice in each epoch (default ${TRAIN_DEFAULTS.emptyRatio})`, valueName: 'r' },
    'edge-share': { type: 'string', description: `share (0-1) of the slices without tumour drawn from the edge slices, where the brain is under ${EDGE_SLICE_AREA * 100}% of its largest cross-section: vertex, skull base (default: drawn like the others)`, valueName: 's' },
    'tumour-slices': { type: 'string', description: 'at most N tumour slices of each study per epoch, so small tumours weigh as much as large ones (default: all)', valueName: 'N' },
    'checkpoint-every': { type: 'string', description: `write a checkpoint every N steps (default ${TRAIN_DEFAULTS.checkpointEvery})`, valueName: 'N' },
    'validate-every': { type: 'string', description: 'validate every N epochs (default 1; 0 = never)', valueName: 'N' },
    loss: { type: 'string', description: 'official (default) or weighted-bce', valueName: 'variant' },
    threads: { type: 'string', description: 'ONNX Runtime threads (default: all cores)', valueName: 'N' },
    resume: { type: 'boolean', description: 'continue from the last checkpoint in --out' },
    'max-seconds': { type: 'string', description: 'time budget: stop after this many seconds of training and save the model (the learning rate anneals over the budget)', valueName: 'N' },
    'held-out': { type: 'string', description: 'folder of held-out studies: whole-volume Dice of the starting and the trained model, side by side (and in the model\'s provenance)', valueName: 'folder' },
    json: { type: 'boolean', description: 'one JSON line per step and per validation on stdout' },
  },
  async run(args, io) {
    const [{ train }, { STRATEGIES }, { LOSS_VARIANTS }] = await Promise.all([
      import('../../core/train/trainer.ts'),
      import('../../core/train/train-graph.ts'),
      import('../../core/train/loss.ts'),
    ]);
    const data = listOption(args, 'data');
    if (!data?.length) throw new UserError('--data is required (see --help)');
    const out = requireOption(args, 'out');
    const strategy = stringOption(args, 'strategy') ?? 'adapter';
    if (!(STRATEGIES as readonly string[]).includes(strategy)) throw new UserError(`--strategy must be one of ${STRATEGIES.join(', ')}`);
    const loss = stringOption(args, 'loss') ?? 'official';
    if (!(LOSS_VARIANTS as readonly string[]).includes(loss)) throw new UserError(`--loss must be one of ${LOSS_VARIANTS.join(', ')}`);
    const regionsFlag = stringOption(args, 'regions');
    if (regionsFlag !== undefined && regionsFlag !== 'brats' && regionsFlag !== 'binary') throw new UserError('--regions must be brats or binary');
    const config = hieraConfigOption(stringOption(args, 'config'));
    const checkpoint = stringOption(args, 'checkpoint');
    if (!checkpoint && !config) throw new UserError('give --checkpoint to fine-tune, or --config to start from fresh weights');
    const channelsFlag = listOption(args, 'channels');
    // a checkpoint says how it was trained: fine-tuning goes on that way unless a flag says otherwise
    const [{ readStoredRunSettings }, { bundledFor }, { checkInputSize, resolveRunSettings, describeRunSettings }] = await Promise.all([
      import('../../core/model/checkpoint.ts'),
      import('../../core/jobs/bundled.ts'),
      import('../../core/model/run-settings.ts'),
    ]);
    const sizeFlag = numberOption(args, 'size');
    if (sizeFlag !== undefined) checkInputSize([sizeFlag, sizeFlag]);
    const [stored, bundled] = checkpoint ? await Promise.all([readStoredRunSettings(checkpoint), bundledFor(checkpoint)]) : [{}, null];
    const run = resolveRunSettings({
      user: {
        ...(sizeFlag !== undefined ? { size: [sizeFlag, sizeFlag] as [number, number] } : {}),
        ...(channelsFlag?.length ? { channels: channelsFlag } : {}),
        ...(regionsFlag ? { regions: regionsFlag as 'brats' | 'binary' } : {}),
      },
      checkpoint: stored,
      bundled: bundled?.run,
    });
    const size = run.from.size === 'default' ? TRAIN_DEFAULTS.size : run.size[0];
    if (run.size[0] !== run.size[1]) throw new UserError(`${checkpoint}: trained at ${run.size.join('×')}; training runs on square inputs, pass --size`);
    const regions = run.regions;
    if (checkpoint) io.stderr(`${describeRunSettings(run).join('; ')}\n`);
    const json = args.values.json === true;
    const controller = new AbortController();
    const onSignal = (): void => {
      io.stderr('\nstopping after this step (a checkpoint will be written)…\n');
      controller.abort();
    };
    process.once('SIGINT', onSignal);
    let progress: ReturnType<typeof createProgress> | undefined;
    try {
      const result = await train(
        {
          data,
          val: listOption(args, 'val'),
          init: checkpoint ? { checkpoint, config: config ?? bundled?.config } : { fresh: config! },
          out,
          strategy: strategy as 'adapter' | 'lora' | 'full',
          lora: { rank: rangedOption(args, 'lora-rank', POSITIVE_INT, TRAIN_DEFAULTS.loraRank), alpha: rangedOption(args, 'lora-alpha', { above: 0 }, TRAIN_DEFAULTS.loraAlpha) },
          epochs: rangedOption(args, 'epochs', POSITIVE_INT),
          steps: rangedOption(args, 'steps', POSITIVE_INT),
          batch: rangedOption(args, 'batch', POSITIVE_INT, TRAIN_DEFAULTS.batch),
          lr: rangedOption(args, 'lr', { above: 0 }, TRAIN_DEFAULTS.lr),
          weightDecay: rangedOption(args, 'weight-decay', { min: 0 }, TRAIN_DEFAULTS.weightDecay),
          size: [size, size],
          // default channels stay unset: the data loader's own rule picks them per study
          channels: run.from.channels === 'default' ? undefined : run.channels,
          regions,
          // a fine-tune runs as its starting model did (the bundled model's mirroring included)
          ...(run.from.tta === 'default' ? {} : { tta: run.tta }),
          seed: rangedOption(args, 'seed', SEED_RANGE, TRAIN_DEFAULTS.seed),
          emptyRatio: rangedOption(args, 'empty-ratio', { min: 0 }, TRAIN_DEFAULTS.emptyRatio),
          tumourSlicesPerStudy: rangedOption(args, 'tumour-slices', POSITIVE_INT),
          edgeShare: rangedOption(args, 'edge-share', { min: 0, max: 1 }),
          checkpointEvery: rangedOption(args, 'checkpoint-every', POSITIVE_INT, TRAIN_DEFAULTS.checkpointEvery),
          validateEvery: rangedOption(args, 'validate-every', { integer: true, min: 0 }, 1),
          loss: loss as 'official' | 'weighted-bce',
          resume: args.values.resume === true,
          threads: rangedOption(args, 'threads', POSITIVE_INT),
          maxSeconds: rangedOption(args, 'max-seconds', POSITIVE_INT),
          heldOut: listOption(args, 'held-out'),
        },
        {
          start(info) {
            io.stderr(`training ${info.trainable.toLocaleString('en')} parameters (${strategy}; ${info.frozen.toLocaleString('en')} frozen) on ${info.studies} studies, ${info.slices} slices per epoch: ${info.totalSteps} steps\n`);
            progress = createProgress(io, 'train', info.totalSteps, { unit: 'steps', step: 5 });
            progress.update(info.resumedFrom);
          },
          step(e) {
            progress?.update(e.step, `loss ${e.loss[3]!.toFixed(4)} lr ${e.lr.toExponential(2)} ${e.imagesPerSecond.toFixed(2)} img/s`);
            if (json) io.stdout(`${JSON.stringify({ type: 'step', ...e })}\n`);
          },
          validation(v) {
            progress?.clear();
            io.stderr(`validation after epoch ${v.epoch + 1}: Dice ${Object.entries(v.meanDice).map(([r, d]) => `${r} ${d.toFixed(4)}`).join(', ')}\n`);
            if (json) io.stdout(`${JSON.stringify({ type: 'validation', ...v })}\n`);
          },
          message(text) {
            progress?.clear();
            io.stderr(`${text}\n`);
          },
          heldOut(phase, v) {
            progress?.clear();
            io.stderr(`held-out Dice ${phase === 'before' ? 'of the starting model' : 'after training'}: ${Object.entries(v.meanDice).map(([r, d]) => `${r} ${d.toFixed(4)}`).join(', ')}\n`);
            if (json) io.stdout(`${JSON.stringify({ type: 'heldOut', phase, ...v })}\n`);
          },
        },
        controller.signal,
      );
      progress?.finish(`done: ${result.steps} steps${result.stoppedByBudget ? ' (time budget reached)' : ''}`);
      io.stderr(`model written to ${result.model}\n`);
      if (json) io.stdout(`${JSON.stringify({ type: 'done', ...result })}\n`);
      return 0;
    } finally {
      process.off('SIGINT', onSignal);
    }
  },
});
