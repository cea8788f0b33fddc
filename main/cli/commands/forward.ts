import { FileError } from '../../core/errors.ts';
import { defineCommand, requireOption, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';

export default defineCommand({
  name: 'forward',
  summary: 'run a checkpoint on a tensor: trunk → feat0…feat3, SAM2-UNet → out, out1, out2 (eval mode)',
  usage: 'forward --checkpoint <file> [--config <preset | JSON file>] --input <x.safetensors> --output <y.safetensors>',
  options: {
    checkpoint: { type: 'string', description: 'SAM2 .pt, SAM2-UNet .pth or .safetensors weights', valueName: 'file' },
    config: { type: 'string', description: 'Hiera preset (hiera_t, hiera_s, hiera_b+, hiera_l) or JSON file; default: from the file or its shapes', valueName: 'preset|file' },
    input: { type: 'string', description: 'safetensors file with a float tensor "input" of shape (B, 3, H, W), H and W multiples of 32', valueName: 'file' },
    output: { type: 'string', description: 'safetensors file to write the outputs to', valueName: 'file' },
    device: { type: 'string', description: 'auto, cpu, cuda, dml, coreml or webgpu (default cpu)', valueName: 'device' },
    'no-cache': { type: 'boolean', description: 'do not read or write the built-model cache' },
    json: { type: 'boolean', description: 'print a JSON summary on stdout' },
  },
  details: 'The built ONNX model is cached in $SAM2UNET_CACHE (default ~/.cache/sam2unet-workstation).',
  async run(args, io) {
    const checkpointPath = requireOption(args, 'checkpoint');
    const inputPath = requireOption(args, 'input');
    const outputPath = requireOption(args, 'output');
    const config = hieraConfigOption(stringOption(args, 'config'));
    const [{ readCheckpoint }, { readSafetensors, writeSafetensors }, engine, session] = await Promise.all([
      import('../../core/model/checkpoint.ts'),
      import('../../core/model/safetensors.ts'),
      import('../../core/model/engine.ts'),
      import('../../core/onnx/session.ts'),
    ]);
    const device = session.parseDevice(stringOption(args, 'device') ?? 'cpu');

    const tensors = await readSafetensors(inputPath);
    const input = tensors.get('input');
    if (!input) throw new FileError(inputPath, `no tensor named "input" (found ${[...tensors.keys()].slice(0, 8).join(', ') || 'none'})`);
    const [b, c, h, w] = input.shape;
    if (input.shape.length !== 4 || c !== 3 || !b) throw new FileError(inputPath, `"input" has shape [${input.shape.join(', ')}], expected (B, 3, H, W)`);
    if (h! % 32 || w! % 32 || !h || !w) throw new FileError(inputPath, `"input" is ${h}×${w}; height and width must be positive multiples of 32`);

    const ckpt = await readCheckpoint(checkpointPath, config ? { config } : {});
    io.stderr(`${checkpointPath}: ${ckpt.kind} (${ckpt.format}), embed_dim ${ckpt.config.embed_dim}, stages ${ckpt.config.stages.join('/')}\n`);
    const built = await engine.buildModel(ckpt.kind, ckpt.config, ckpt.weights, {
      height: h!,
      width: w!,
      outChannels: ckpt.outChannels,
      origin: checkpointPath,
      cache: args.values['no-cache'] === true ? false : undefined,
    });
    io.stderr(`model ${built.cached ? 'from cache' : 'built'} in ${built.buildMs.toFixed(0)} ms (${(built.flops / 1e9).toFixed(2)} GFLOP per image)\n`);
    const client = await session.SessionClient.create(built.source, { device, onMessage: (m) => io.stderr(`note: ${m}\n`) });
    try {
      io.stderr(`running on ${session.PROVIDER_LABEL[client.provider]} with ${client.threads} threads\n`);
      const started = performance.now();
      const outputs = await client.run({ input: { dims: input.shape, data: input.data } }, { copy: true });
      const ms = performance.now() - started;
      const result = new Map(built.outputs.map((name) => [name, { shape: [...outputs[name]!.dims], data: outputs[name]!.data }]));
      await writeSafetensors(outputPath, result);
      io.stderr(`wrote ${[...result.keys()].join(', ')} to ${outputPath} in ${ms.toFixed(0)} ms\n`);
      if (args.values.json === true) {
        io.stdout(`${JSON.stringify({ kind: ckpt.kind, outputs: Object.fromEntries([...result].map(([k, t]) => [k, t.shape])), provider: client.provider, ms: Math.round(ms) })}\n`);
      }
    } finally {
      await client.dispose();
    }
    return 0;
  },
});
