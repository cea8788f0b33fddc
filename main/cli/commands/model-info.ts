import { defineCommand, POSITIVE_INT, rangedOption, requireOption, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';

export default defineCommand({
  name: 'model-info',
  summary: 'describe a checkpoint: configuration, parameter counts per fine-tuning strategy, keys',
  usage: 'model-info --checkpoint <file> [--config <preset | JSON file>] [--lora-rank 8] [--json]',
  options: {
    checkpoint: { type: 'string', description: 'SAM2 .pt, SAM2-UNet .pth or .safetensors weights', valueName: 'file' },
    config: { type: 'string', description: 'Hiera preset or JSON file; default: from the file or its shapes', valueName: 'preset|file' },
    'lora-rank': { type: 'string', description: 'rank for the LoRA parameter count (default 8)', valueName: 'r' },
    json: { type: 'boolean', description: 'machine-readable output' },
  },
  details: 'Counts for a trunk-only checkpoint describe the SAM2-UNet built around it (fresh adapters and decoder).',
  async run(args, io) {
    const path = requireOption(args, 'checkpoint');
    const config = hieraConfigOption(stringOption(args, 'config'));
    const rank = rangedOption(args, 'lora-rank', POSITIVE_INT, 8);
    const [{ readCheckpoint }, { parameterCounts }, { presetName, featureChannels }, { numel }] = await Promise.all([
      import('../../core/model/checkpoint.ts'),
      import('../../core/model/keys.ts'),
      import('../../core/model/config.ts'),
      import('../../core/model/tensor.ts'),
    ]);
    const ckpt = await readCheckpoint(path, config ? { config } : {});
    const counts = parameterCounts(ckpt.config, ckpt.outChannels);
    const buffers = new Set(ckpt.buffers);
    const groups: Record<string, { keys: number; values: number }> = {};
    let fileParams = 0;
    for (const [key, t] of ckpt.weights) {
      const m = /^(encoder\.blocks|blocks|encoder\.[^.]+|[^.]+)/.exec(key);
      const group = m![1]!;
      const n = numel(t.shape);
      groups[group] ??= { keys: 0, values: 0 };
      groups[group]!.keys++;
      groups[group]!.values += n;
      if (!buffers.has(key)) fileParams += n;
    }
    const info = {
      file: path,
      kind: ckpt.kind,
      format: ckpt.format,
      preset: presetName(ckpt.config) ?? null,
      config: ckpt.config,
      outChannels: ckpt.outChannels,
      featureChannels: featureChannels(ckpt.config),
      parameters: {
        inFile: fileParams,
        frozenTrunk: counts.trunk,
        adapter: counts.adapter,
        decoder: counts.decoder,
        up4Unused: counts.up4Unused,
        bufferValues: counts.buffers,
        trainable: { adapter: counts.byStrategy.adapter, lora: { rank, count: counts.byStrategy.lora(rank) }, full: counts.byStrategy.full },
        trainableExcludingUp4: { adapter: counts.byStrategy.adapter - counts.up4Unused },
      },
      keys: { total: ckpt.weights.size, buffers: ckpt.buffers.length, ignored: ckpt.ignored.length, groups },
    };
    if (args.values.json === true) {
      io.stdout(`${JSON.stringify(info, null, 2)}\n`);
      return 0;
    }
    const n = (v: number): string => v.toLocaleString('en-US');
    const c = ckpt.config;
    io.stdout(
      [
        `${path}`,
        `  kind ${info.kind} (${info.format}), preset ${info.preset ?? 'custom'}, out channels ${info.outChannels}`,
        `  embed_dim ${c.embed_dim}, heads ${c.num_heads}, stages ${c.stages.join('/')}, global blocks ${c.global_att_blocks.join('/')}, windows ${c.window_spec.join('/')}`,
        `  features ${info.featureChannels.join('/')} channels`,
        `parameters`,
        `  in file              ${n(fileParams)}`,
        `  frozen trunk         ${n(counts.trunk)}`,
        `  trainable, adapter   ${n(counts.byStrategy.adapter)} (${n(counts.byStrategy.adapter - counts.up4Unused)} without the unused up4)`,
        `  trainable, LoRA r=${rank}  ${n(counts.byStrategy.lora(rank))}`,
        `  trainable, full      ${n(counts.byStrategy.full)}`,
        `keys: ${ckpt.weights.size} (${ckpt.buffers.length} buffers), ${ckpt.ignored.length} ignored`,
        ...Object.entries(groups).map(([g, s]) => `  ${g.padEnd(26)} ${String(s.keys).padStart(5)} keys ${n(s.values).padStart(14)} values`),
        '',
      ].join('\n'),
    );
    return 0;
  },
});
