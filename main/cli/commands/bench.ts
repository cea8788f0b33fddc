import { UserError } from '../../core/errors.ts';
import { defineCommand, numberOption, rangedOption, requireOption, stringOption } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';

function median(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

export default defineCommand({
  name: 'bench',
  summary: 'time the SAM2-UNet forward pass of a preset with random weights',
  usage: 'bench --preset <name> | --config <JSON file> [--size 352] [--batch 1] [--runs 5] [--precision float32|int8|float16] [--int8-weights s8,s7,u8] [--no-baseline] [--device auto] [--channels 1] [--trunk] [--json]',
  options: {
    preset: { type: 'string', description: 'hiera_t, hiera_s, hiera_b+ or hiera_l', valueName: 'name' },
    config: { type: 'string', description: 'a custom Hiera configuration (JSON file or inline JSON) instead of a preset', valueName: 'file' },
    size: { type: 'string', description: 'input height = width, a multiple of 32 (default 352)', valueName: 'px' },
    batch: { type: 'string', description: 'images per run (default 1)', valueName: 'n' },
    runs: { type: 'string', description: 'timed runs after one warm-up run (default 5)', valueName: 'n' },
    precision: { type: 'string', description: 'float32 (default), int8 (CPU integer kernels) or float16 (GPU providers)', valueName: 'p' },
    'int8-weights': { type: 'string', description: 'with --precision int8: how weights are stored, s8, s7 (±63) or u8 (zero point 128); several separated by commas are timed in the same alternating run, the first reported as the result (default: this CPU\'s choice)', valueName: 'list' },
    'no-baseline': { type: 'boolean', description: 'with --precision int8 or float16: do not time float32 alongside' },
    device: { type: 'string', description: 'auto, cpu, cuda, dml, coreml or webgpu (default auto)', valueName: 'device' },
    channels: { type: 'string', description: 'output channels of the heads (default 1)', valueName: 'n' },
    threads: { type: 'string', description: 'intra-op threads (default: physical cores)', valueName: 'n' },
    spin: { type: 'boolean', description: 'let ONNX Runtime’s idle threads spin between ops (off by default, as in the app: see onnx/session.ts sessionSpinning)' },
    trunk: { type: 'boolean', description: 'time the Hiera trunk alone (feat0…feat3)' },
    json: { type: 'boolean', description: 'print only the JSON result line on stdout' },
  },
  details:
    'The last stdout line is JSON: {"median_ms", "min_ms", "precision", "provider", "threads", "gflops", "peak_rss_mb", ...};\n' +
    'gflops = the float32 model’s FLOPs (counted from the graph) × batch / median time: for int8 a\n' +
    'GFLOP/s-equivalent. With --precision int8 or float16 the float32 model is timed in the same run,\n' +
    'runs alternating, and the line carries "baseline" (its figures) and "ratio" (median / float32 median).\n' +
    'Build and session times go to stderr.',
  async run(args, io) {
    const configArg = stringOption(args, 'config');
    const presetArg = configArg === undefined ? requireOption(args, 'preset') : (stringOption(args, 'preset') ?? 'custom');
    const size = numberOption(args, 'size', 352)!;
    (await import('../../core/model/run-settings.ts')).checkInputSize([size, size]);
    const batch = rangedOption(args, 'batch', { integer: true, min: 1, max: 256 }, 1);
    const runs = rangedOption(args, 'runs', { integer: true, min: 1, max: 1000 }, 5);
    const channels = rangedOption(args, 'channels', { integer: true, min: 1, max: 64 }, 1);
    const threads = rangedOption(args, 'threads', { integer: true, min: 1, max: 256 });
    const [{ parseHieraConfig }, { parsePrecision, defaultWeightEncoding, WEIGHT_ENCODINGS }] = await Promise.all([import('../../core/model/config.ts'), import('../../core/onnx/quantize.ts')]);
    const precision = parsePrecision(stringOption(args, 'precision'));
    const encodingsArg = stringOption(args, 'int8-weights');
    if (encodingsArg !== undefined && precision !== 'int8') throw new UserError('--int8-weights applies to --precision int8 only');
    const encodings = (encodingsArg ?? defaultWeightEncoding()).split(',').map((e) => e.trim());
    for (const e of encodings) if (!(WEIGHT_ENCODINGS as readonly string[]).includes(e)) throw new UserError(`--int8-weights: unknown encoding "${e}"; choose from ${WEIGHT_ENCODINGS.join(', ')}`);
    if (new Set(encodings).size !== encodings.length) throw new UserError(`--int8-weights: "${encodingsArg}" names an encoding twice`);
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
    type Variant = { precision: typeof precision; weights?: (typeof WEIGHT_ENCODINGS)[number] };
    const variants: Variant[] = precision === 'int8' ? encodings.map((weights) => ({ precision, weights: weights as Variant['weights'] })) : [{ precision }];
    if (precision !== 'float32' && args.values['no-baseline'] !== true) variants.push({ precision: 'float32' });
    const label = (v: Variant): string => (v.weights ? `${v.precision} (${v.weights} weights)` : v.precision);

    // the models go to a private temporary cache: streamed to disk without joining, so the main
    // thread never holds a second copy of the weights, and ONNX Runtime reads the files itself
    const dir = await mkdtemp(join(tmpdir(), 'sam2unet-bench-'));
    const clients: Awaited<ReturnType<typeof session.SessionClient.create>>[] = [];
    try {
      const models = [];
      for (const v of variants) {
        const p = v.precision;
        const built = await engine.buildModel(kind, config, new RandomWeights(1), { height: size, width: size, outChannels: channels, cache: dir, precision: p, ...(v.weights ? { weightEncoding: v.weights } : {}) });
        io.stderr(`built ${presetArg} ${kind} ${size}×${size} ${label(v)} in ${built.buildMs.toFixed(0)} ms (${(built.flops / 1e9).toFixed(2)} GFLOP per image)\n`);
        const t0 = performance.now();
        const client = await session.SessionClient.create(built.source, { device, threads, spinning: args.values.spin === true || session.sessionSpinning(), onMessage: (m) => io.stderr(`note: ${m}\n`) });
        clients.push(client);
        const sessionMs = performance.now() - t0;
        io.stderr(`${label(v)} session on ${session.PROVIDER_LABEL[client.provider]} (${client.threads} threads) ready in ${sessionMs.toFixed(0)} ms\n`);
        models.push({ ...v, label: label(v), built, client, sessionMs, times: [] as number[] });
      }
      const n = batch * 3 * size * size;
      const input = new Float32Array(n);
      for (let i = 0; i < n; i++) input[i] = Math.sin(i * 0.001);
      // runs alternate between the precisions, so that a change in the machine's load hits both alike
      for (let r = 0; r <= runs; r++) {
        for (const m of models) {
          const started = performance.now();
          await m.client.run({ input: { dims: [batch, 3, size, size], data: input } }, { copy: true });
          const ms = performance.now() - started;
          if (r === 0) io.stderr(`${m.label} warm-up ${ms.toFixed(0)} ms\n`);
          else {
            m.times.push(ms);
            io.stderr(`${m.label} run ${r}/${runs}: ${ms.toFixed(0)} ms\n`);
          }
        }
      }
      const figures = models.map((m) => {
        const med = median(m.times);
        return {
          precision: m.precision,
          ...(m.weights ? { weights: m.weights } : {}),
          median_ms: round1(med),
          min_ms: round1(Math.min(...m.times)),
          per_slice_ms: round1(med / batch),
          gflops: round1((m.built.flops * batch) / (med / 1000) / 1e9),
          build_ms: Math.round(m.built.buildMs),
          session_ms: Math.round(m.sessionMs),
        };
      });
      const main = figures[0]!;
      const baseline = figures.length > 1 && figures.at(-1)!.precision === 'float32' && main.precision !== 'float32' ? figures.at(-1) : undefined;
      // the other int8 encodings, timed in the same alternating run
      const alternatives = figures.slice(1).filter((f) => f !== baseline);
      const client = models[0]!.client;
      const result = {
        preset: presetArg,
        model: kind,
        size,
        batch,
        ...main,
        provider: client.provider,
        threads: client.threads,
        spinning: args.values.spin === true || session.sessionSpinning(),
        model_gflop: Math.round((models[0]!.built.flops / 1e9) * 100) / 100,
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
        ...(baseline ? { baseline, ratio: Math.round((main.median_ms / baseline.median_ms) * 1000) / 1000 } : {}),
        ...(alternatives.length ? { alternatives: alternatives.map((f) => ({ ...f, ratio_to_main: Math.round((f.median_ms / main.median_ms) * 1000) / 1000 })) } : {}),
      };
      for (const f of figures) {
        say(`${presetArg} ${kind} ${size}² batch ${batch} ${label(f)}: median ${f.median_ms} ms, min ${f.min_ms} ms, ${f.gflops} GFLOP/s${f.precision === 'int8' ? '-equivalent' : ''} on ${client.provider}`);
      }
      if (baseline) say(`${precision} / float32 median: ${result.ratio}× (min ${(main.min_ms / baseline.min_ms).toFixed(3)}×); peak RSS ${result.peak_rss_mb} MB`);
      else say(`peak RSS ${result.peak_rss_mb} MB`);
      io.stdout(`${JSON.stringify(result)}\n`);
    } finally {
      for (const c of clients) await c.dispose();
      await rm(dir, { recursive: true, force: true });
    }
    return 0;
  },
});
