import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError, errorMessage } from '../../core/errors.ts';
import type { OrtProviderName, ProbeResult, ProviderCandidate } from '../../core/onnx/devices.ts';
import { INPUT_SIDE_RULE, isInputSide } from '../../core/model/run-settings.ts';
import type { Precision } from '../../core/onnx/quantize.ts';
import { defineCommand, rangedOption, stringOption } from '../command.ts';

const LAUNCHER = fileURLToPath(new URL('../../../bin/sam2unet.mjs', import.meta.url));
const PHANTOM = resolve(fileURLToPath(new URL('../../../', import.meta.url)), '../shared/data/phantoms/BraTS20_Training_001');

interface Forward {
  precision: Precision;
  batch: number;
  size: number;
  median_ms?: number;
  per_image_ms?: number;
  gflops?: number;
  error?: string;
}

interface ProviderReport {
  provider: OrtProviderName;
  label: string;
  /** true: inside the installed binding; false: an add-on its install script fetches; null: not listed by it */
  shipped: boolean | null;
  loads: boolean;
  reason?: string;
  forward?: Forward[];
  train_step?: { strategy: 'adapter'; batch: number; size: number; ms?: number; loss?: number; error?: string };
  segmentation?: { study: string; against: string; precision: Precision; ms?: number; voxel_agreement?: number; dice?: Record<string, number | null>; error?: string }[];
  notes: string[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** One provider attempt in a child process: native errors and a crashing driver stay there. */
function probeInChild(name: OrtProviderName, timeoutMs: number): Promise<ProbeResult & { stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [LAUNCHER, 'device-check', '--probe', name], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SAM2UNET_MEMORY_TUNING: 'off' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        done({ ...(JSON.parse(line) as ProbeResult), stderr });
      } catch {
        done({ loads: false, error: signal ? `the attempt was ended by ${signal}${signal === 'SIGKILL' ? ` after ${timeoutMs / 1000} s` : ''}` : `the attempt exited with code ${code}`, stderr });
      }
    });
  });
}

/** The line of ONNX Runtime's native log that says what was missing. */
function nativeCause(stderr: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.replace(/\x1b\[[0-9;]*m/g, '').trim());
  const hit = lines.find((l) => /cannot open shared object file|Couldn't load|not found|No supported adapter|Failed to get a WebGPU adapter/i.test(l));
  if (!hit) return undefined;
  const m = /(?:error: |Couldn't load )?([^:]*\.so[.\d]*): cannot open shared object file/.exec(hit);
  if (m) return `${m[1]!.split('/').pop()} cannot be loaded (not installed)`;
  return hit.replace(/^.*?\] /, '').slice(0, 240);
}

export default defineCommand({
  name: 'device-check',
  summary: 'which execution providers run here, and how fast: hiera_l forward, a train step, a phantom against the CPU',
  usage: 'device-check [--runs 2] [--size 352] [--cpu-batch-size 128] [--cpu-train-size 64] [--no-train] [--json]',
  options: {
    runs: { type: 'string', description: 'timed forward runs after a warm-up (default 2)', valueName: 'n' },
    size: { type: 'string', description: 'input size of the forward and train-step figures on GPU providers, and of batch 1 on the CPU (default 352)', valueName: 'px' },
    'cpu-batch-size': { type: 'string', description: 'input size of the CPU’s batch-8 and float16 figures (default 128: hiera_l at batch 8 and 352 takes minutes on a CPU)', valueName: 'px' },
    'cpu-train-size': { type: 'string', description: 'input size of the CPU’s train step at batch 8 (default 64)', valueName: 'px' },
    'no-train': { type: 'boolean', description: 'skip the train step' },
    probe: { type: 'string', description: '(internal) try one provider in this process and print the result as JSON', valueName: 'name' },
    json: { type: 'boolean', description: 'print only the JSON line' },
  },
  details:
    'For every provider onnxruntime-node ships or the platform offers (CPU, CUDA, TensorRT when listed, DirectML,\n' +
    'CoreML, WebGPU) it tries a one-node model in a child process and says why a provider does not load. For\n' +
    'each that loads: hiera_l (random weights) forward latency in float32 and float16 at batch 1 and 8, one\n' +
    'hiera_l adapter train step at batch 8, and the bundled model on a shared phantom compared with the CPU’s\n' +
    'float32 labels (the CPU compares its int8 labels). On the CPU the batch-8, float16 and train figures are\n' +
    'taken at smaller sizes (the output says which) to finish in minutes. The last line is JSON.',
  async run(args, io) {
    const devices = await import('../../core/onnx/devices.ts');
    const probe = stringOption(args, 'probe');
    if (probe !== undefined) {
      if (!(devices.ORT_PROVIDER_NAMES as readonly string[]).includes(probe)) throw new UserError(`--probe: unknown provider "${probe}"; one of ${devices.ORT_PROVIDER_NAMES.join(', ')}`);
      io.stdout(`${JSON.stringify(await devices.probeProvider(probe as OrtProviderName))}\n`);
      return 0;
    }
    const runs = rangedOption(args, 'runs', { integer: true, min: 1, max: 100 }, 2);
    const size = rangedOption(args, 'size', { integer: true, min: 32, max: 2048 }, 352);
    const cpuBatchSize = rangedOption(args, 'cpu-batch-size', { integer: true, min: 32, max: 2048 }, 128);
    const cpuTrainSize = rangedOption(args, 'cpu-train-size', { integer: true, min: 32, max: 2048 }, 64);
    for (const [flag, v] of [['size', size], ['cpu-batch-size', cpuBatchSize], ['cpu-train-size', cpuTrainSize]] as const) {
      if (!isInputSide(v)) throw new UserError(`--${flag} must be ${INPUT_SIDE_RULE}, got ${v}`);
    }
    const json = args.values.json === true;
    const say = (line: string): void => {
      if (!json) io.stdout(`${line}\n`);
    };
    const started = performance.now();
    const [{ loadOrt }, { parseHieraConfig }, { default: pkg }] = await Promise.all([
      import('../../core/onnx/session.ts'),
      import('../../core/model/config.ts'),
      import('../../../node_modules/onnxruntime-node/package.json', { with: { type: 'json' } }),
    ]);
    await loadOrt();
    const cpu = devices.cpuDescription();
    say(`onnxruntime-node ${(pkg as { version: string }).version} on ${process.platform} ${process.arch}; CPU ${cpu.model}, ${cpu.cores} threads, ${cpu.flags.join(' ') || 'no flags read'}`);

    // ---- which providers load ----
    const candidates: ProviderCandidate[] = await devices.providerCandidates();
    const reports: ProviderReport[] = [];
    for (const c of candidates) {
      const attempt = await probeInChild(c.name, 60_000);
      const obstacles = devices.providerObstacles(c.name);
      const cause = attempt.loads ? undefined : nativeCause(attempt.stderr);
      const shipped = c.bundled === true ? 'in the binding' : c.bundled === false ? 'an add-on that onnxruntime-node’s install script downloads' : 'not listed by this onnxruntime-node';
      const reason = attempt.loads ? undefined : [...obstacles, cause, attempt.error].map((r) => r?.trim()).filter((r, i, all): r is string => Boolean(r) && all.indexOf(r) === i).join('; ');
      reports.push({ provider: c.name, label: c.label, shipped: c.bundled, loads: attempt.loads, ...(reason ? { reason } : {}), notes: c.usedByApp ? [] : ['listed by onnxruntime-node; the app does not use it'] });
      say(`${c.label.padEnd(9)} ${attempt.loads ? 'loads' : 'does not load'} (${shipped})${reason ? `: ${reason}` : ''}`);
    }

    // ---- figures for each that loads ----
    const config = parseHieraConfig('hiera_l', 'device-check');
    const [{ buildModel }, { RandomWeights }, { SessionClient }] = await Promise.all([import('../../core/model/engine.ts'), import('../../core/onnx/layers.ts'), import('../../core/onnx/session.ts')]);
    const weights = new RandomWeights(1);
    const cache = await mkdtemp(join(tmpdir(), 'sam2unet-device-check-'));
    let cpuLabels: Uint8Array | undefined;
    try {
      for (const report of reports.filter((r) => r.loads && r.provider !== 'tensorrt')) {
        const provider = report.provider as Exclude<OrtProviderName, 'tensorrt'>;
        const onCpu = provider === 'cpu';
        say(`— ${report.label} —`);
        // forward latency
        report.forward = [];
        const plan: { precision: Precision; batch: number; size: number }[] = onCpu
          ? [
              { precision: 'float32', batch: 1, size },
              { precision: 'float32', batch: 8, size: cpuBatchSize },
              { precision: 'float16', batch: 1, size: cpuBatchSize },
              { precision: 'float16', batch: 8, size: cpuBatchSize },
            ]
          : (['float32', 'float16'] as const).flatMap((precision) => [1, 8].map((batch) => ({ precision, batch, size })));
        if (onCpu) report.notes.push(`CPU: batch 8 and float16 at ${cpuBatchSize}² (hiera_l at batch 8 and ${size}² takes minutes here); float16 has no CPU kernels: ONNX Runtime casts around each op, so its CPU figure shows that the graph runs, not a speed`);
        for (const item of plan) {
          const entry: Forward = { ...item };
          try {
            const built = await buildModel('sam2unet', config, weights, { height: item.size, width: item.size, outChannels: 3, cache, precision: item.precision });
            const client = await SessionClient.create(built.source, { device: provider });
            try {
              if (client.provider !== provider) throw new Error(`the session fell back to ${client.provider}`);
              const input = new Float32Array(item.batch * 3 * item.size * item.size).map((_, i) => Math.sin(i * 0.001));
              const times: number[] = [];
              for (let r = 0; r <= runs; r++) {
                const t0 = performance.now();
                await client.run({ input: { dims: [item.batch, 3, item.size, item.size], data: input } }, { copy: true });
                if (r > 0) times.push(performance.now() - t0);
              }
              const ms = median(times);
              Object.assign(entry, { median_ms: round(ms), per_image_ms: round(ms / item.batch), gflops: round((built.flops * item.batch) / (ms / 1000) / 1e9) });
            } finally {
              await client.dispose();
            }
          } catch (err) {
            entry.error = errorMessage(err).split('\n')[0]!.slice(0, 300);
          }
          report.forward.push(entry);
          say(`  hiera_l forward ${item.precision} batch ${item.batch} at ${item.size}²: ${entry.error ? `failed: ${entry.error}` : `${entry.median_ms} ms (${entry.per_image_ms} ms an image, ${entry.gflops} GFLOP/s)`}`);
        }
        // one adapter train step at batch 8
        if (args.values['no-train'] !== true) report.train_step = await trainStep(provider, config, onCpu ? cpuTrainSize : size, say);
        // the bundled model on a phantom against the CPU's float32 labels
        report.segmentation = [];
        const precisions: Precision[] = onCpu ? ['float32', 'int8'] : ['float32', 'float16'];
        for (const precision of precisions) {
          const result = await segmentPhantom(provider, precision);
          if (onCpu && precision === 'float32' && result.labels) cpuLabels = result.labels;
          const entry: NonNullable<ProviderReport['segmentation']>[number] = { study: 'BraTS20_Training_001', against: 'cpu float32', precision, ...(result.ms !== undefined ? { ms: Math.round(result.ms) } : {}), ...(result.error ? { error: result.error } : {}) };
          if (result.labels && cpuLabels) Object.assign(entry, await compareLabels(result.labels, cpuLabels));
          report.segmentation.push(entry);
          say(`  phantom ${entry.study} ${precision}: ${entry.error ? `failed: ${entry.error}` : `${(result.ms! / 1000).toFixed(1)} s; labels agree with the CPU's float32 at ${((entry.voxel_agreement ?? 0) * 100).toFixed(3)} % of voxels, Dice ${Object.entries(entry.dice ?? {}).map(([k, v]) => `${k} ${v === null ? '—' : v.toFixed(4)}`).join(', ')}`}`);
        }
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
    const result = {
      onnxruntime_node: (pkg as { version: string }).version,
      platform: `${process.platform}-${process.arch}`,
      cpu,
      providers_loading: reports.filter((r) => r.loads).map((r) => r.provider),
      providers: reports,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    };
    io.stdout(`${JSON.stringify(result)}\n`);
    return 0;
  },
});

/** One hiera_l adapter train step (train/train-graph.ts, as the trainer builds it) at batch 8 on `provider`: the second step is timed. */
async function trainStep(provider: Exclude<OrtProviderName, 'tensorrt'>, config: import('../../core/model/config.ts').HieraConfig, size: number, say: (line: string) => void): Promise<NonNullable<ProviderReport['train_step']>> {
  const batch = 8;
  const entry: NonNullable<ProviderReport['train_step']> = { strategy: 'adapter', batch, size };
  try {
    const [{ expectedSam2UNetKeys }, { RandomWeights }, trainStepModule, graphModule, { joinChunks, serializeModel }, { loadOrt }] = await Promise.all([
      import('../../core/model/keys.ts'),
      import('../../core/onnx/layers.ts'),
      import('../../core/train/train-step.ts'),
      import('../../core/train/train-graph.ts'),
      import('../../core/onnx/writer.ts'),
      import('../../core/onnx/session.ts'),
    ]);
    const random = new RandomWeights(2);
    const weights = new Map(expectedSam2UNetKeys(config, 3).map((spec) => [spec.key, random.get(spec.key, spec.shape)]));
    const input = new Float32Array(batch * 3 * size * size).map((_, i) => Math.sin(i * 0.01));
    const mask = new Float32Array(batch * 3 * size * size).map((_, i) => (i % 7 < 2 ? 1 : 0));
    const times: number[] = [];
    let loss = NaN;
    if (provider === 'cpu') {
      // the trainer's own step (CPU sessions)
      const session = await trainStepModule.TrainStepSession.create({ config, weights, batch, height: size, width: size, outChannels: 3, strategy: 'adapter' });
      try {
        for (let step = 1; step <= 2; step++) {
          const t0 = performance.now();
          const out = await session.run(input.slice(), mask.slice(), 1e-4, step);
          times.push(performance.now() - t0);
          loss = out.loss[3]!;
        }
      } finally {
        await session.dispose();
      }
    } else {
      // the same graph on another provider: the trainer's sessions are CPU-only, so feed it here
      const plan = graphModule.buildTrainGraph(config, weights, { batch, height: size, width: size, outChannels: 3, strategy: 'adapter' });
      const ort = await loadOrt();
      const session = await ort.InferenceSession.create(joinChunks(serializeModel(plan.graph)), { executionProviders: [provider], graphOptimizationLevel: 'all' });
      try {
        const feeds: Record<string, import('onnxruntime-node').Tensor> = {
          input: new ort.Tensor('float32', input, [batch, 3, size, size]),
          mask: new ort.Tensor('float32', mask, [batch, 3, size, size]),
          lr: new ort.Tensor('float32', Float32Array.of(1e-4), []),
          step: new ort.Tensor('float32', Float32Array.of(1), []),
        };
        for (const name of [...plan.trainable, ...plan.buffers]) feeds[name] = new ort.Tensor('float32', weights.get(name)!.data, weights.get(name)!.shape);
        for (const name of plan.trainable) for (const which of ['m', 'v'] as const) feeds[graphModule.momentName(which, name)] = new ort.Tensor('float32', new Float32Array(weights.get(name)!.data.length), weights.get(name)!.shape);
        for (let r = 0; r < 2; r++) {
          const t0 = performance.now();
          const out = await session.run(feeds);
          times.push(performance.now() - t0);
          loss = (out.loss!.data as Float32Array)[3]!;
        }
      } finally {
        await session.release();
      }
    }
    Object.assign(entry, { ms: Math.round(times[times.length - 1]!), loss: round(loss, 5) });
    say(`  hiera_l adapter train step, batch ${batch} at ${size}²: ${entry.ms} ms (second step; loss ${entry.loss})`);
  } catch (err) {
    entry.error = errorMessage(err).split('\n')[0]!.slice(0, 300);
    say(`  hiera_l adapter train step, batch ${batch} at ${size}²: failed: ${entry.error}`);
  }
  return entry;
}

/** The bundled model on the shared phantom BraTS20_Training_001 on `provider`. */
async function segmentPhantom(provider: Exclude<OrtProviderName, 'tensorrt'>, precision: Precision): Promise<{ labels?: Uint8Array; ms?: number; error?: string }> {
  try {
    const [{ openPath }, { bundledModel }, { sliceModelFromCheckpoint }, { segmentStudy }] = await Promise.all([
      import('../../core/io/open.ts'),
      import('../../core/jobs/bundled.ts'),
      import('../../core/jobs/model.ts'),
      import('../../core/jobs/segment.ts'),
    ]);
    const study = (await openPath(PHANTOM)).studies[0]!;
    const model = await sliceModelFromCheckpoint((await bundledModel()).checkpoint, { device: provider, precision });
    try {
      if (model.provider !== provider) throw new Error(`the model fell back to ${model.provider}`);
      const t0 = performance.now();
      const { labels } = await segmentStudy(study, model, { groundTruth: null, volumeMetrics: false });
      return { labels: labels.data as Uint8Array, ms: performance.now() - t0 };
    } finally {
      await model.dispose();
    }
  } catch (err) {
    return { error: errorMessage(err).split('\n')[0]!.slice(0, 300) };
  }
}

async function compareLabels(a: Uint8Array, b: Uint8Array): Promise<{ voxel_agreement: number; dice: Record<string, number | null> }> {
  const { regionDice, regionsFor } = await import('../../core/metrics/regions.ts');
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  const dice: Record<string, number | null> = {};
  for (const region of regionsFor('brats')) {
    const d = regionDice(a, b, region);
    dice[region.name] = d === null ? null : round(d, 5);
  }
  return { voxel_agreement: round(same / a.length, 6), dice };
}
