/**
 * Training benchmark: one SAM2-UNet train step (forward in train mode, structure loss, backward,
 * AdamW — the graph of train-graph.ts) at 352², random weights (initSam2UNetWeights), CPU.
 * Prints graph build, serialisation and session-creation times, the median step time over a few
 * steps after a warm-up step, GFLOP/s and peak RSS, beside the official PyTorch code's step
 * measured right after ours in the same run (pytorch-train-step.py: SAM2-UNet's own classes and
 * loss, torch.optim.AdamW, the same threads, batch and size), so both see the same machine load.
 * The baseline needs a python3 with torch (Debian's python3-torch) and a checkout of
 * https://github.com/WZH0120/SAM2-UNet (it vendors SAM2's Hiera) at --official DIR,
 * $SAM2UNET_OFFICIAL_CODE or .cache/official/SAM2-UNet; without them the bench says why it could
 * not measure it. Each measurement runs in its own child process, so peak RSS is its own; the
 * parent watches the child and stops it when it exceeds the memory limit or the build limit.
 *
 * Run: npx tsx test/bench/train.bench.ts [--preset hiera_t] [--steps 3] [--batch N] [--size 352]
 *        [--out-channels 3] [--strategy adapter] [--threads N] [--rounds 1] [--official DIR]
 *        [--no-pytorch] [--pytorch-wait passive|default] [--profile] [--max-rss-gb 20] [--max-build-min 10]
 * Without --preset: hiera_t at batch 4, then hiera_l at batch 2. `--rounds N` alternates ours and
 * PyTorch N times and pools the steps (a shared machine's load drifts). `--profile` adds ONNX
 * Runtime's per-op-type time per step, split into forward, backward and AdamW (node names say
 * which), and keeps the JSON trace. `--estimate-only` builds the graph and prints the size of all
 * its float values (no session, no steps): an upper bound on the activation memory, cheap enough to
 * run on a busy machine. `--preset mini` (hiera_t's layout with embed_dim 8, the golden mini
 * model's) is a quick smoke test of the benchmark itself; `--preset bundled` is the bundled
 * model's configuration (embed_dim 16; it was trained at --size 128 --batch 8 --strategy full).
 * Prints figures; never passes or fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { freemem, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HIERA_PRESETS, type HieraConfig } from '../../main/core/model/config.ts';
import { Graph } from '../../main/core/onnx/ir.ts';
import { graphFlops } from '../../main/core/onnx/ops.ts';
import { loadOrt, physicalCores } from '../../main/core/onnx/session.ts';
import { joinChunks, serializeModel } from '../../main/core/onnx/writer.ts';
import type { Strategy } from '../../main/core/train/train-graph.ts';
import { trainSessionOptions } from '../../main/core/train/train-step.ts';

const GOAL = 0.7;
/** The bundled model's configuration (`--preset bundled`: hiera_t's layout, embed_dim 16) */
const BUNDLED_CONFIG = fileURLToPath(new URL('../../models/default/config.json', import.meta.url));

const { values } = parseArgs({
  options: {
    preset: { type: 'string' },
    steps: { type: 'string', default: '3' },
    batch: { type: 'string' },
    size: { type: 'string', default: '352' },
    'out-channels': { type: 'string', default: '3' },
    strategy: { type: 'string', default: 'adapter' },
    threads: { type: 'string' },
    'max-rss-gb': { type: 'string', default: '20' },
    'max-build-min': { type: 'string', default: '10' },
    'estimate-only': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    official: { type: 'string' },
    'no-pytorch': { type: 'boolean', default: false },
    'pytorch-wait': { type: 'string', default: 'passive' },
    child: { type: 'boolean', default: false },
  },
});

if (!['passive', 'default'].includes(values['pytorch-wait']!)) throw new Error(`--pytorch-wait is passive or default, not "${values['pytorch-wait']}"`);
const threads = values.threads ? Number(values.threads) : physicalCores();
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

function configFor(preset: string): HieraConfig {
  if (preset === 'mini') return { ...HIERA_PRESETS.hiera_t!, embed_dim: 8 };
  if (preset === 'bundled') return { ...HIERA_PRESETS.hiera_t!, ...(JSON.parse(readFileSync(BUNDLED_CONFIG, 'utf8')) as { config: Partial<HieraConfig> }).config };
  const config = HIERA_PRESETS[preset];
  if (!config) throw new Error(`unknown preset "${preset}" (${Object.keys(HIERA_PRESETS).join(', ')}, mini, bundled)`);
  return config;
}

/** The measurement itself, in the child process. Progress lines start with '#', the result is the last line (JSON). */
async function measure(preset: string, batch: number): Promise<void> {
  const { initSam2UNetWeights } = await import('../../main/core/train/init.ts');
  const { buildTrainGraph, momentName, nextMomentName } = await import('../../main/core/train/train-graph.ts');
  const { cosineLearningRate } = await import('../../main/core/train/schedule.ts');
  const { mulberry32 } = await import('../../main/core/util/random.ts');
  const ort = await loadOrt();
  const size = Number(values.size);
  const outChannels = Number(values['out-channels']);
  const steps = Number(values.steps);
  const config = configFor(preset);
  const phase = (what: string): void => console.log(`# ${what}`);

  let t = performance.now();
  const weights = initSam2UNetWeights(config, outChannels, 1);
  const initMs = performance.now() - t;
  phase(`weights ready (${initMs.toFixed(0)} ms); building the train graph`);
  t = performance.now();
  const plan = buildTrainGraph(config, weights, { batch, height: size, width: size, outChannels, strategy: values.strategy as Strategy });
  const buildMs = performance.now() - t;
  // Memory figures from the graph alone: every node output as if none were freed or reused (an
  // upper bound), and the forward values the backward pass reads (alive when backward starts: a
  // lower bound on the peak, before ONNX Runtime's fusions)
  const bytesOf = (name: string): number => {
    const info = plan.graph.info(name);
    const bytesPer = info.dtype === 'float64' || info.dtype === 'int64' ? 8 : info.dtype === 'bool' ? 1 : 4;
    return bytesPer * info.shape.reduce<number>((n, d) => n * (typeof d === 'number' ? d : 1), 1);
  };
  const nodes = plan.graph.nodes;
  const backwardStart = nodes.findIndex((n) => n.outputs.some((o) => o.startsWith('grad/')));
  const forwardValues = new Set(nodes.slice(0, backwardStart).flatMap((n) => n.outputs));
  const savedForBackward = new Set<string>();
  for (const node of nodes.slice(backwardStart)) for (const input of node.inputs) if (forwardValues.has(input)) savedForBackward.add(input);
  let valueBytes = 0;
  for (const node of nodes) for (const out of node.outputs) valueBytes += bytesOf(out);
  let savedBytes = 0;
  for (const name of savedForBackward) savedBytes += bytesOf(name);
  // FLOPs of the forward pass (with the loss) and of the rest (backward, AdamW), from ops.ts's per-op counts
  const forwardOnly = new Graph();
  for (const [k, v] of plan.graph.values) forwardOnly.values.set(k, v);
  forwardOnly.nodes.push(...nodes.slice(0, backwardStart));
  const forwardGflop = graphFlops(forwardOnly, {}) / 1e9;
  const totalGflop = graphFlops(plan.graph, {}) / 1e9;
  phase(
    `graph built: ${nodes.length} nodes, ${forwardGflop.toFixed(0)} GFLOP forward + ${(totalGflop - forwardGflop).toFixed(0)} backward/AdamW (${buildMs.toFixed(0)} ms); node outputs ${(valueBytes / 2 ** 30).toFixed(1)} GB without reuse, ` +
      `${savedForBackward.size} forward values read by the backward pass ${(savedBytes / 2 ** 30).toFixed(1)} GB`,
  );
  if (values['estimate-only']) {
    console.log(JSON.stringify({ preset, batch, size, estimateOnly: true, nodes: nodes.length, forward_gflop: forwardGflop, total_gflop: totalGflop, value_gb: valueBytes / 2 ** 30, saved_gb: savedBytes / 2 ** 30, build_ms: buildMs, trainable: plan.trainableCount, peak_rss_mb: peakRss() / 2 ** 20 }));
    return;
  }
  t = performance.now();
  let bytes: Uint8Array | undefined = joinChunks(serializeModel(plan.graph, { name: 'sam2unet_train_step' }));
  const serializeMs = performance.now() - t;
  const modelBytes = bytes.length;
  const rssAfterBuild = peakRss();
  phase(`serialised ${mb(modelBytes)} (${serializeMs.toFixed(0)} ms); creating the session`);
  t = performance.now();
  const profilePrefix = values.profile ? join(tmpdir(), `train-profile-${preset}-${process.pid}`) : undefined;
  const session = await ort.InferenceSession.create(bytes, { ...trainSessionOptions(threads, plan.frozenCount * 4), ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}) });
  // the trainer holds the serialised model no longer than this either
  bytes = undefined;
  const sessionMs = performance.now() - t;
  const rssAfterSession = peakRss();
  phase(`session created (${sessionMs.toFixed(0)} ms); stepping`);

  // the same feeds TrainStepSession.run gives, with the state fed back after every step
  const random = mulberry32(3);
  const plane = size * size;
  const input = Float32Array.from({ length: batch * 3 * plane }, () => random() * 4 - 2);
  const mask = new Float32Array(batch * outChannels * plane);
  for (let p = 0; p < batch * outChannels; p++) {
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) mask[p * plane + y * size + x] = Math.hypot(y - size / 2, x - size / 3) < size / (5 + p) ? 1 : 0;
  }
  const state = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const name of [...plan.trainable, ...plan.buffers]) {
    const w = weights.get(name)!;
    state.set(name, { data: w.data, dims: [...w.shape] });
  }
  for (const name of plan.trainable) {
    const dims = [...weights.get(name)!.shape];
    for (const which of ['m', 'v'] as const) state.set(momentName(which, name), { data: new Float32Array(weights.get(name)!.data.length), dims });
  }
  const stepTimes: number[] = [];
  const losses: number[] = [];
  for (let step = 1; step <= steps + 1; step++) {
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      input: new ort.Tensor('float32', input, [batch, 3, size, size]),
      mask: new ort.Tensor('float32', mask, [batch, outChannels, size, size]),
      lr: new ort.Tensor('float32', Float32Array.of(cosineLearningRate(step - 1, steps + 1, 1e-3)), []),
      step: new ort.Tensor('float32', Float32Array.of(step), []),
    };
    for (const [name, s] of state) feeds[name] = new ort.Tensor('float32', s.data, s.dims);
    t = performance.now();
    const out = await session.run(feeds);
    const ms = performance.now() - t;
    for (const name of plan.trainable) {
      state.get(name)!.data = out[`after.${name}`]!.data as Float32Array;
      for (const which of ['m', 'v'] as const) state.get(momentName(which, name))!.data = out[nextMomentName(which, name)]!.data as Float32Array;
    }
    for (const name of plan.buffers) state.get(name)!.data = out[`after.${name}`]!.data as Float32Array;
    losses.push((out.loss!.data as Float32Array)[3]!);
    if (step > 1) stepTimes.push(ms);
    phase(`step ${step}${step === 1 ? ' (warm-up)' : ''}: ${(ms / 1000).toFixed(2)} s, loss ${losses.at(-1)!.toFixed(4)}`);
  }
  const profile = profilePrefix ? summariseProfile(session, profilePrefix) : undefined;
  await session.release();
  const sorted = [...stepTimes].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  console.log(
    JSON.stringify({
      preset,
      batch,
      size,
      outChannels,
      strategy: values.strategy,
      threads,
      nodes: plan.graph.nodes.length,
      forward_gflop: forwardGflop,
      total_gflop: totalGflop,
      trainable: plan.trainableCount,
      frozen: plan.frozenCount,
      model_mb: modelBytes / 2 ** 20,
      saved_gb: savedBytes / 2 ** 30,
      init_ms: initMs,
      build_ms: buildMs,
      serialize_ms: serializeMs,
      session_ms: sessionMs,
      step_ms: stepTimes,
      median_step_ms: median,
      losses,
      peak_rss_after_build_mb: rssAfterBuild / 2 ** 20,
      peak_rss_after_session_mb: rssAfterSession / 2 ** 20,
      peak_rss_mb: peakRss() / 2 ** 20,
      profile,
    }),
  );
}

/** Which part of the train step a node belongs to, from its name (the writer names nodes after their first output). */
function phaseOf(node: string): 'forward' | 'backward' | 'adamw' {
  if (node.startsWith('grad/') || node.startsWith('grad.')) return 'backward';
  if (node.startsWith('adamw/') || node.startsWith('after.') || node.startsWith('next.')) return 'adamw';
  return 'forward';
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/**
 * ONNX Runtime's profile (enableProfiling) as milliseconds per step by phase and op type, over the
 * runs after the warm-up one. Fused nodes keep the name of the node they grew from, so the phase holds.
 */
function summariseProfile(session: { endProfiling(): void }, prefix: string): { file: string; runs: number; byPhase: Record<string, number>; top: [string, number, number][] } {
  session.endProfiling();
  const dir = dirname(prefix);
  const file = readdirSync(dir).filter((f) => join(dir, f).startsWith(prefix) && f.endsWith('.json')).map((f) => join(dir, f))[0];
  if (!file) throw new Error(`no profile written under ${prefix}*`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const from = runs.length > 1 ? runs[0]!.ts + runs[0]!.dur : 0;
  const counted = Math.max(1, runs.length - 1);
  const byPhase: Record<string, number> = {};
  const byOp = new Map<string, { ms: number; calls: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
    const phase = phaseOf(e.name.slice(0, -'_kernel_time'.length));
    const key = `${phase} ${e.args?.op_name ?? '?'}`;
    const ms = e.dur / 1000 / counted;
    byPhase[phase] = (byPhase[phase] ?? 0) + ms;
    const entry = byOp.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls += 1 / counted;
    byOp.set(key, entry);
  }
  const top = [...byOp].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]): [string, number, number] => [k, v.ms, Math.round(v.calls)]);
  return { file, runs: counted, byPhase, top };
}

/** Memory the kernel could hand out now (Linux MemAvailable: free plus reclaimable cache), else os.freemem(). */
function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}

/** VmRSS of a process in bytes (Linux), or undefined when it can't be read. */
function currentRss(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Watched {
  /** the last line, parsed, when the process ended normally */
  result?: Record<string, unknown>;
  /** why there is no result */
  failure?: string;
}

/**
 * Runs a measuring process, relaying its '#' progress lines and stopping it when it exceeds the
 * memory limit, leaves the machine short of memory, or builds its graph for too long.
 */
function runWatched(label: string, command: string, args: string[], buildMarker?: string, env?: NodeJS.ProcessEnv): Promise<Watched> {
  const maxRss = Number(values['max-rss-gb']) * 2 ** 30;
  const maxBuildMs = Number(values['max-build-min']) * 60_000;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const started = performance.now();
  let buildDone = buildMarker === undefined;
  let stopped: string | undefined;
  let maxSeen = 0;
  let last = '';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  child.stdout.setEncoding('utf8');
  let pending = '';
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('#')) {
        console.log(`  ${label}: ${line.slice(2)} [${((performance.now() - started) / 1000).toFixed(0)} s, RSS ${mb(currentRss(child.pid!) ?? 0)}]`);
        if (buildMarker && line.includes(buildMarker)) buildDone = true;
      } else if (line.trim()) last = line;
    }
  });
  const watch = setInterval(() => {
    const rss = currentRss(child.pid!) ?? 0;
    maxSeen = Math.max(maxSeen, rss);
    let reason: string | undefined;
    if (rss > maxRss) reason = `RSS ${mb(rss)} exceeds the ${values['max-rss-gb']} GB limit`;
    else if (availableMemory() < 2 ** 30) reason = `the machine is down to ${mb(availableMemory())} available (RSS ${mb(rss)})`;
    else if (!buildDone && performance.now() - started > maxBuildMs) reason = `the graph build takes over ${values['max-build-min']} minutes`;
    if (reason && !stopped) {
      stopped = reason;
      child.kill('SIGKILL');
    }
  }, 500);
  return new Promise((resolve) => {
    child.on('error', (error) => {
      clearInterval(watch);
      resolve({ failure: `could not start ${command}: ${error.message}` });
    });
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      if (stopped) return resolve({ failure: `STOPPED after ${((performance.now() - started) / 1000).toFixed(0)} s: ${stopped} (largest RSS seen ${mb(maxSeen)})` });
      if (code !== 0 || !last) {
        const detail = stderr.trim().split('\n').slice(-3).join(' | ');
        return resolve({ failure: `failed (exit ${code ?? signal})${detail ? `: ${detail}` : ''}` });
      }
      try {
        resolve({ result: JSON.parse(last) as Record<string, unknown> });
      } catch {
        resolve({ failure: `its last line is not JSON: ${last.slice(0, 200)}` });
      }
    });
  });
}

/** Runs one preset of ours in a child process. */
function runOurs(preset: string, batch: number): Promise<Watched> {
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--preset', preset, '--batch', String(batch)];
  for (const key of ['steps', 'size', 'out-channels', 'strategy', 'threads'] as const) if (values[key] !== undefined) args.push(`--${key}`, String(values[key]));
  if (values['estimate-only']) args.push('--estimate-only');
  if (values.profile) args.push('--profile');
  return runWatched(preset, process.execPath, args, 'graph built');
}

// ---- the PyTorch baseline: the official code on this machine, in the same run ----

const PYTORCH_SCRIPT = fileURLToPath(new URL('./pytorch-train-step.py', import.meta.url));
/** Where the official SAM2-UNet code is looked for when neither --official nor SAM2UNET_OFFICIAL_CODE names it. */
const DEFAULT_OFFICIAL = fileURLToPath(new URL('../../.cache/official/SAM2-UNet', import.meta.url));

interface Baseline {
  python?: string;
  official?: string;
  /** why the baseline cannot be measured */
  unavailable?: string;
}

/** A python3 that imports torch (Debian's python3-torch first) and a checkout of the official code. */
function findBaseline(): Baseline {
  if (values['no-pytorch']) return { unavailable: 'skipped (--no-pytorch)' };
  const official = values.official ?? process.env.SAM2UNET_OFFICIAL_CODE ?? DEFAULT_OFFICIAL;
  const needed = ['SAM2UNet.py', 'train.py', 'sam2/modeling/backbones/hieradet.py'];
  const missing = needed.filter((f) => !existsSync(join(official, f)));
  if (missing.length) {
    return { unavailable: `the official SAM2-UNet code is not at ${official} (missing ${missing.join(', ')}): git clone https://github.com/WZH0120/SAM2-UNet there, or pass --official DIR` };
  }
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) return { python, official };
  }
  return { unavailable: 'no python3 here imports torch (Debian: apt-get install python3-torch)' };
}

function runPyTorch(baseline: Baseline, preset: string, batch: number): Promise<Watched> {
  const args = [
    PYTORCH_SCRIPT,
    '--official', baseline.official!,
    '--config', JSON.stringify(configFor(preset)),
    '--batch', String(batch),
    '--size', String(values.size),
    '--out-channels', String(values['out-channels']),
    '--steps', String(values.steps),
    '--threads', String(threads),
  ];
  return runWatched(`${preset} PyTorch`, baseline.python!, args, undefined, pytorchEnv());
}

/**
 * PyTorch's OpenMP threads wait passively by default here, as ours do (trainSessionOptions): on
 * this shared 2-core machine, spinning OpenMP threads made the official step twice as slow
 * (hiera_t batch 4: 38 s against 19 s at load 8), so comparing with them would flatter us.
 * `--pytorch-wait default` keeps OpenMP's own policy.
 */
function pytorchEnv(): NodeJS.ProcessEnv {
  if (values['pytorch-wait'] === 'default') return process.env;
  return { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};
const seconds = (ms: number[]): string => ms.map((m) => (m / 1000).toFixed(2)).join(', ');

type OursResult = Record<string, number> & { step_ms: number[]; estimateOnly?: boolean; profile?: ReturnType<typeof summariseProfile> };

function reportEstimate(preset: string, batch: number, r: OursResult): void {
  console.log(
    `${preset.padEnd(8)} batch ${batch}, ${r.size}²: ${r.nodes} nodes, ${r.forward_gflop.toFixed(0)} + ${(r.total_gflop - r.forward_gflop).toFixed(0)} GFLOP (forward + backward/AdamW), ${r.trainable.toLocaleString('en')} trainable; node outputs ${r.value_gb.toFixed(1)} GB without reuse, saved for backward ${r.saved_gb.toFixed(1)} GB; ` +
      `build ${(r.build_ms / 1000).toFixed(1)} s, peak RSS ${r.peak_rss_mb.toFixed(0)} MB (graph only)`,
  );
}

/** Ours and PyTorch's figures for one preset, step times pooled over the rounds. */
function report(preset: string, batch: number, ours: OursResult[], torch: Record<string, unknown>[], torchNote: string | undefined): void {
  const r = ours.at(-1)!;
  const oursMs = ours.flatMap((o) => o.step_ms);
  const s = median(oursMs) / 1000;
  const gflop = r.total_gflop;
  console.log(
    `${preset.padEnd(8)} batch ${batch}, ${r.size}², ${r.outChannels} out, ${values.strategy}, ${r.threads} threads:\n` +
      `         ours:    median step ${s.toFixed(2)} s over ${oursMs.length} (${seconds(oursMs)}) = ${(gflop / s).toFixed(1)} GFLOP/s; peak RSS ${Math.max(...ours.map((o) => o.peak_rss_mb)).toFixed(0)} MB ` +
      `(after build ${r.peak_rss_after_build_mb.toFixed(0)}, after session ${r.peak_rss_after_session_mb.toFixed(0)})`,
  );
  if (torch.length) {
    const torchMs = torch.flatMap((t) => t.step_ms as number[]);
    const ts = median(torchMs) / 1000;
    const ratio = s / ts;
    console.log(
      `         PyTorch: median step ${ts.toFixed(2)} s over ${torchMs.length} (${seconds(torchMs)}) = ${(gflop / ts).toFixed(1)} GFLOP/s-equivalent; peak RSS ${Math.max(...torch.map((t) => t.peak_rss_mb as number)).toFixed(0)} MB ` +
        `(official SAM2-UNet, torch ${String(torch[0]!.torch)}, attention ${String(torch[0]!.attention)}, OpenMP wait policy ${values['pytorch-wait'] === 'default' ? 'OpenMP default' : 'passive'}, ${String(torch[0]!.trainable)} trainable incl. the unused up4)\n` +
        `         ours / PyTorch = ${ratio.toFixed(2)}× (goal ≤ ${GOAL}×: ${ratio <= GOAL ? 'met' : 'not met'})`,
    );
  } else {
    console.log(`         PyTorch: not measured: ${torchNote ?? 'no result'}`);
  }
  console.log(
    `         ${r.nodes} nodes, ${r.forward_gflop.toFixed(0)} + ${(r.total_gflop - r.forward_gflop).toFixed(0)} GFLOP (forward + backward/AdamW); ${r.trainable.toLocaleString('en')} trainable / ${r.frozen.toLocaleString('en')} frozen, model ${r.model_mb.toFixed(0)} MB; ` +
      `saved for backward ${r.saved_gb.toFixed(1)} GB; build ${(r.build_ms / 1000).toFixed(1)} s, serialise ${(r.serialize_ms / 1000).toFixed(1)} s, session ${(r.session_ms / 1000).toFixed(1)} s`,
  );
  if (r.profile) {
    const phases = Object.entries(r.profile.byPhase).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)} s`);
    console.log(`         profile (ONNX Runtime, per step over ${r.profile.runs} steps, ${r.profile.file}): ${phases.join(', ')}; top op types:`);
    for (const [key, ms, calls] of r.profile.top.slice(0, 25)) console.log(`           ${key.padEnd(34)} ${(ms / 1000).toFixed(3).padStart(7)} s  ${String(calls).padStart(5)} calls`);
  }
}

const DEFAULT_BATCH: Record<string, number> = { hiera_t: 4, hiera_l: 2 };

if (values.child) {
  await measure(values.preset!, Number(values.batch));
} else {
  const runs: [string, number][] = values.preset
    ? [[values.preset, Number(values.batch ?? DEFAULT_BATCH[values.preset] ?? 1)]]
    : [
        ['hiera_t', Number(values.batch ?? 4)],
        ['hiera_l', Number(values.batch ?? 2)],
      ];
  const baseline = values['estimate-only'] ? { unavailable: 'estimate only' } : findBaseline();
  const rounds = Math.max(1, Number(values.rounds));
  console.log(
    `threads ${threads}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, available memory ${mb(availableMemory())}; ` +
      `PyTorch baseline: ${baseline.unavailable ? `not measured: ${baseline.unavailable}` : `${baseline.python} with ${baseline.official}, measured right after ours${rounds > 1 ? `, ${rounds} rounds alternating` : ''}`}`,
  );
  for (const [preset, batch] of runs) {
    const ours: OursResult[] = [];
    const torch: Record<string, unknown>[] = [];
    let oursFailure: string | undefined;
    let torchNote = baseline.unavailable;
    for (let round = 0; round < rounds && !oursFailure; round++) {
      const o = await runOurs(preset, batch);
      if (!o.result) {
        oursFailure = o.failure;
        break;
      }
      const r = o.result as OursResult;
      if (r.estimateOnly) {
        reportEstimate(preset, batch, r);
        break;
      }
      ours.push(r);
      if (!baseline.unavailable) {
        const t = await runPyTorch(baseline, preset, batch);
        if (t.result) torch.push(t.result);
        else torchNote = t.failure;
      }
    }
    if (oursFailure) console.log(`${preset.padEnd(8)} batch ${batch}: ${oursFailure}`);
    else if (ours.length) report(preset, batch, ours, torch, torchNote);
  }
  console.log(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}
