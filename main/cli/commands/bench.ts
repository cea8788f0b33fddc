import { UserError } from '../../core/errors.ts';
import { defineCommand, numberOption, requireOption, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';

function intOption(value: number | undefined, name: string, min: number, max: number): number {
  if (value === undefined || !Number.isInteger(value) || value < min || value > max) throw new UserError(`--${name} expects an integer ${min}…${max}, got ${value}`);
  return value;
}

export default defineCommand({
  name: 'bench',
  summary: 'time the SAM2-UNet forward pass of a preset with random weights',
  usage: 'bench --preset <name> | --config <JSON file> [--size 352] [--batch 1] [--runs 5] [--device auto] [--channels 1] [--trunk] [--json]',
  options: {
    preset: { type: 'string', description: 'hiera_t, hiera_s, hiera_b+ or hiera_l', valueName: 'name' },
    config: { type: 'string', description: 'a custom Hiera configuration (JSON file or inline JSON) instead of a preset', valueName: 'file' },
    size: { type: 'string', description: 'input height = width, a multiple of 32 (default 352)', valueName: 'px' },
    batch: { type: 'string', description: 'images per run (default 1)', valueName: 'n' },
    runs: { type: 'string', description: 'timed runs after one warm-up run (default 5)', valueName: 'n' },
    device: { type: 'string', description: 'auto, cpu, cuda, dml, coreml or webgpu (default auto)', valueName: 'device' },
    channels: { type: 'string', description: 'output channels of the heads (default 1)', valueName: 'n' },
    threads: { type: 'string', description: 'intra-op threads (default: physical cores)', valueName: 'n' },
    trunk: { type: 'boolean', description: 'time the Hiera trunk alone (feat0…feat3)' },
    json: { type: 'boolean', description: 'print only the JSON result line on stdout' },
  },
  details:
    'The last stdout line is JSON: {"median_ms", "min_ms", "provider", "threads", "gflops", "peak_rss_mb", ...};\n' +
    'gflops = the model’s FLOPs (counted from the graph) × batch / median time. Build and session times go to stderr.',
  async run(args, io) {
    const configArg = stringOption(args, 'config');
    const presetArg = configArg === undefined ? requireOption(args, 'preset') : (stringOption(args, 'preset') ?? 'custom');
    const size = intOption(numberOption(args, 'size', 352), 'size', 32, 4096);
    if (size % 32) throw new UserError(`--size must be a multiple of 32, got ${size}`);
    const batch = intOption(numberOption(args, 'batch', 1), 'batch', 1, 256);
    const runs = intOption(numberOption(args, 'runs', 5), 'runs', 1, 1000);
    const channels = intOption(numberOption(args, 'channels', 1), 'channels', 1, 64);
    const threadsArg = numberOption(args, 'threads');
    const threads = threadsArg === undefined ? undefined : intOption(threadsArg, 'threads', 1, 256);
    const { parseHieraConfig } = await import('../../core/model/config.ts');
    const config = configArg === undefined ? parseHieraConfig(presetArg, '--preset') : hieraConfigOption(configArg)!;
    const [{ mkdtemp, rm }, { tmpdir }, { join }, engine, { RandomWeights }, session] = await Promise.all([
      import('node:fs/promises'),
      import('node:os'),
      import('node:path'),
      import('../../core/model/engine.ts'),
      import('../../core/onnx/layers.ts'),
      import('../../core/onnx/session.ts'),
    ]);
    const device = session.parseDevice(stringOption(args, 'device'));
    const kind = args.values.trunk === true ? 'trunk' : 'sam2unet';
    const json = args.values.json === true;
    const say = (line: string): void => {
      if (!json) io.stdout(`${line}\n`);
    };

    // the model goes to a private temporary cache: streamed to disk without joining, so the main
    // thread never holds a second copy of the weights, and ONNX Runtime reads the file itself
    const dir = await mkdtemp(join(tmpdir(), 'sam2unet-bench-'));
    try {
      const built = await engine.buildModel(kind, config, new RandomWeights(1), { height: size, width: size, outChannels: channels, cache: dir });
      io.stderr(`built ${presetArg} ${kind} ${size}×${size} in ${built.buildMs.toFixed(0)} ms (${(built.flops / 1e9).toFixed(2)} GFLOP per image)\n`);
      const t0 = performance.now();
      const client = await session.SessionClient.create(built.source, { device, threads, onMessage: (m) => io.stderr(`note: ${m}\n`) });
      const sessionMs = performance.now() - t0;
      io.stderr(`session on ${session.PROVIDER_LABEL[client.provider]} (${client.threads} threads) ready in ${sessionMs.toFixed(0)} ms\n`);
      const n = batch * 3 * size * size;
      const input = new Float32Array(n);
      for (let i = 0; i < n; i++) input[i] = Math.sin(i * 0.001);
      const times: number[] = [];
      try {
        for (let r = 0; r <= runs; r++) {
          const started = performance.now();
          await client.run({ input: { dims: [batch, 3, size, size], data: input } }, { copy: true });
          const ms = performance.now() - started;
          if (r === 0) io.stderr(`warm-up ${ms.toFixed(0)} ms\n`);
          else {
            times.push(ms);
            io.stderr(`run ${r}/${runs}: ${ms.toFixed(0)} ms\n`);
          }
        }
      } finally {
        await client.dispose();
      }
      const sorted = [...times].sort((a, b) => a - b);
      const median = sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
      const result = {
        preset: presetArg,
        model: kind,
        size,
        batch,
        median_ms: Math.round(median * 10) / 10,
        min_ms: Math.round(sorted[0]! * 10) / 10,
        per_slice_ms: Math.round((median / batch) * 10) / 10,
        provider: client.provider,
        threads: client.threads,
        gflops: Math.round(((built.flops * batch) / (median / 1000) / 1e9) * 10) / 10,
        model_gflop: Math.round((built.flops / 1e9) * 100) / 100,
        build_ms: Math.round(built.buildMs),
        session_ms: Math.round(sessionMs),
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      };
      say(`${presetArg} ${kind} ${size}² batch ${batch}: median ${result.median_ms} ms, min ${result.min_ms} ms, ${result.gflops} GFLOP/s on ${client.provider}, peak RSS ${result.peak_rss_mb} MB`);
      io.stdout(`${JSON.stringify(result)}\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return 0;
  },
});
