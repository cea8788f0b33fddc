import { FileError, UserError } from '../../core/errors.ts';
import { defineCommand, POSITIVE_INT, rangedOption, requireOption, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';

export default defineCommand({
  name: 'train-step',
  summary: 'one training step (train mode, fresh AdamW) from a checkpoint: loss, outputs, gradients and updated weights',
  usage: 'train-step --checkpoint <sam2unet.pth | safetensors> [--config <preset | JSON>] --input <file.safetensors> --output <out.safetensors> [--lr 1e-3] [--weight-decay 5e-4] [--strategy adapter]',
  options: {
    checkpoint: { type: 'string', description: 'SAM2-UNet weights (.pth or .safetensors)', valueName: 'file' },
    config: { type: 'string', description: 'Hiera preset or JSON configuration (default: from the file or its shapes)', valueName: 'preset|file' },
    input: { type: 'string', description: 'safetensors with "input" (B, 3, H, W) and "mask" (B, C, H, W)', valueName: 'file' },
    output: { type: 'string', description: 'safetensors to write loss, out, out1, out2, grad.<param>, after.<param>, after.<bn buffer> to', valueName: 'file' },
    lr: { type: 'string', description: 'learning rate (default 1e-3)', valueName: 'number' },
    'weight-decay': { type: 'string', description: 'AdamW weight decay (default 5e-4)', valueName: 'number' },
    strategy: { type: 'string', description: 'adapter (default), lora or full', valueName: 'name' },
    'lora-rank': { type: 'string', description: 'LoRA rank (default 8)', valueName: 'r' },
    'lora-alpha': { type: 'string', description: 'LoRA alpha (default 16)', valueName: 'alpha' },
    loss: { type: 'string', description: 'official (default: plain-mean BCE, as the official code computes) or weighted-bce', valueName: 'variant' },
    json: { type: 'boolean', description: 'print the losses and parameter counts as JSON on stdout' },
  },
  details: 'The output has the layout of ../shared/golden/sam2unet_mini/train_step.safetensors, which also works as --input.',
  async run(args, io) {
    const checkpointPath = requireOption(args, 'checkpoint');
    const inputPath = requireOption(args, 'input');
    const outputPath = requireOption(args, 'output');
    const config = hieraConfigOption(stringOption(args, 'config'));
    const strategy = stringOption(args, 'strategy') ?? 'adapter';
    const [{ readCheckpoint }, { readSafetensors, writeSafetensors }, { runTrainStep }, { STRATEGIES }, { LOSS_VARIANTS }, { initLora }, { LORA_DEFAULTS }] = await Promise.all([
      import('../../core/model/checkpoint.ts'),
      import('../../core/model/safetensors.ts'),
      import('../../core/train/train-step.ts'),
      import('../../core/train/train-graph.ts'),
      import('../../core/train/loss.ts'),
      import('../../core/train/init.ts'),
      import('../../core/train/defaults.ts'),
    ]);
    if (!(STRATEGIES as readonly string[]).includes(strategy)) throw new UserError(`--strategy must be one of ${STRATEGIES.join(', ')}`);
    const loss = stringOption(args, 'loss') ?? 'official';
    if (!(LOSS_VARIANTS as readonly string[]).includes(loss)) throw new UserError(`--loss must be one of ${LOSS_VARIANTS.join(', ')}`);

    const tensors = await readSafetensors(inputPath);
    for (const name of ['input', 'mask']) {
      if (!tensors.has(name)) throw new FileError(inputPath, `no tensor named "${name}"`);
    }
    const ckpt = await readCheckpoint(checkpointPath, config ? { config } : {});
    if (ckpt.kind !== 'sam2unet') throw new FileError(checkpointPath, 'a trunk-only checkpoint has no decoder to train; start from a SAM2-UNet checkpoint');
    const lora = { rank: rangedOption(args, 'lora-rank', POSITIVE_INT, LORA_DEFAULTS.rank), alpha: rangedOption(args, 'lora-alpha', { above: 0 }, LORA_DEFAULTS.alpha) };
    if (strategy === 'lora') initLora(ckpt.weights, ckpt.config, lora, 0);
    const started = performance.now();
    const result = await runTrainStep({
      config: ckpt.config,
      weights: ckpt.weights,
      input: tensors.get('input')!,
      mask: tensors.get('mask')!,
      lr: rangedOption(args, 'lr', { above: 0 }, 1e-3),
      weightDecay: rangedOption(args, 'weight-decay', { min: 0 }, 5e-4),
      strategy: strategy as 'adapter' | 'lora' | 'full',
      lora,
      loss: loss as 'official' | 'weighted-bce',
    });
    const ms = performance.now() - started;
    await writeSafetensors(outputPath, result.tensors);
    const losses = Array.from(result.tensors.get('loss')!.data);
    io.stderr(`${strategy}: ${result.plan.trainableCount.toLocaleString('en')} trainable, ${result.plan.frozenCount.toLocaleString('en')} frozen parameters; loss ${losses.map((l) => l.toFixed(6)).join(' ')} (${ms.toFixed(0)} ms incl. graph build)\n`);
    io.stderr(`wrote ${result.tensors.size} tensors to ${outputPath}\n`);
    if (args.values.json === true) {
      io.stdout(`${JSON.stringify({ loss: losses, strategy, trainable: result.plan.trainableCount, frozen: result.plan.frozenCount, unused: result.plan.unused, ms: Math.round(ms) })}\n`);
    }
    return 0;
  },
});
