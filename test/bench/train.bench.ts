/**
 * Training benchmark: one SAM2-UNet train step (forward in train mode, structure loss, backward,
 * AdamW — the graph of train-graph.ts) at 352², random weights (initSam2UNetWeights), CPU.
 * Prints graph build, serialisation and session-creation times, the median step time over a few
 * steps after a warm-up step, and peak RSS, beside PyTorch's figures on this machine.
 * Each preset runs in its own child process, so peak RSS is its own; the parent watches the
 * child and stops it when it exceeds the memory limit or the build limit (a hiera_l graph holds
 * every activation for the backward pass).
 *
 * Run: npx tsx test/bench/train.bench.ts [--preset hiera_t] [--steps 3] [--batch N] [--size 352]
 *        [--out-channels 3] [--strategy adapter] [--threads N] [--max-rss-gb 20] [--max-build-min 10]
 * Without --preset: hiera_t at batch 4, then hiera_l at batch 2. `--estimate-only` builds the graph
 * and prints the size of all its float values (no session, no steps): an upper bound on the
 * activation memory, cheap enough to run on a busy machine. `--preset mini` (hiera_t's layout
 * with embed_dim 8, the golden mini model's) is a quick smoke test of the benchmark itself.
 * Prints figures; never passes or fails.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
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

/** PyTorch (official code, CPU, this machine) seconds per train step at 352², and the batch it was measured at. */
const PYTORCH: Record<string, { batch: number; seconds: number }> = { hiera_t: { batch: 4, seconds: 10.2 }, hiera_l: { batch: 2, seconds: 28 } };
const GOAL = 0.8;

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
    child: { type: 'boolean', default: false },
  },
});

const threads = values.threads ? Number(values.threads) : physicalCores();
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

function configFor(preset: string): HieraConfig {
  if (preset === 'mini') return { ...HIERA_PRESETS.hiera_t!, embed_dim: 8 };
  const config = HIERA_PRESETS[preset];
  if (!config) throw new Error(`unknown preset "${preset}" (${Object.keys(HIERA_PRESETS).join(', ')}, mini)`);
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
  const bytes = joinChunks(serializeModel(plan.graph, { name: 'sam2unet_train_step' }));
  const serializeMs = performance.now() - t;
  const rssAfterBuild = peakRss();
  phase(`serialised ${mb(bytes.length)} (${serializeMs.toFixed(0)} ms); creating the session`);
  t = performance.now();
  const profilePrefix = values.profile ? join(tmpdir(), `train-profile-${preset}-${process.pid}`) : undefined;
  const session = await ort.InferenceSession.create(bytes, { ...trainSessionOptions(threads), ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}) });
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
      model_mb: bytes.length / 2 ** 20,
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

/** VmRSS of a process in bytes (Linux), or undefined when it can't be read. */
function currentRss(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Runs one preset in a child process, watching its memory and build time. */
function runChild(preset: string, batch: number): Promise<void> {
  const maxRss = Number(values['max-rss-gb']) * 2 ** 30;
  const maxBuildMs = Number(values['max-build-min']) * 60_000;
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--preset', preset, '--batch', String(batch)];
  for (const key of ['steps', 'size', 'out-channels', 'strategy', 'threads'] as const) if (values[key] !== undefined) args.push(`--${key}`, String(values[key]));
  if (values['estimate-only']) args.push('--estimate-only');
  if (values.profile) args.push('--profile');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const started = performance.now();
  let buildDone = false;
  let stopped: string | undefined;
  let maxSeen = 0;
  let last = '';
  child.stdout.setEncoding('utf8');
  let pending = '';
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('#')) {
        console.log(`  ${preset}: ${line.slice(2)} [${((performance.now() - started) / 1000).toFixed(0)} s, RSS ${mb(currentRss(child.pid!) ?? 0)}]`);
        if (line.includes('graph built')) buildDone = true;
      } else if (line.trim()) last = line;
    }
  });
  const watch = setInterval(() => {
    const rss = currentRss(child.pid!) ?? 0;
    maxSeen = Math.max(maxSeen, rss);
    let reason: string | undefined;
    if (rss > maxRss) reason = `RSS ${mb(rss)} exceeds the ${values['max-rss-gb']} GB limit`;
    else if (freemem() < 2 ** 30) reason = `the machine is down to ${mb(freemem())} free (RSS ${mb(rss)})`;
    else if (!buildDone && performance.now() - started > maxBuildMs) reason = `the graph build takes over ${values['max-build-min']} minutes`;
    if (reason && !stopped) {
      stopped = reason;
      child.kill('SIGKILL');
    }
  }, 500);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      if (stopped) {
        console.log(`${preset.padEnd(8)} batch ${batch}: STOPPED after ${((performance.now() - started) / 1000).toFixed(0)} s: ${stopped} (largest RSS seen ${mb(maxSeen)})`);
        return resolve();
      }
      if (code !== 0 || !last) {
        console.log(`${preset.padEnd(8)} batch ${batch}: failed (exit ${code ?? signal})`);
        return resolve();
      }
      const r = JSON.parse(last) as Record<string, number> & { step_ms: number[]; estimateOnly?: boolean; profile?: ReturnType<typeof summariseProfile> };
      if (r.estimateOnly) {
        console.log(
          `${preset.padEnd(8)} batch ${batch}, ${r.size}²: ${r.nodes} nodes, ${r.forward_gflop.toFixed(0)} + ${(r.total_gflop - r.forward_gflop).toFixed(0)} GFLOP (forward + backward/AdamW), ${r.trainable.toLocaleString('en')} trainable; node outputs ${r.value_gb.toFixed(1)} GB without reuse, saved for backward ${r.saved_gb.toFixed(1)} GB; ` +
            `build ${(r.build_ms / 1000).toFixed(1)} s, peak RSS ${r.peak_rss_mb.toFixed(0)} MB (graph only)`,
        );
        return resolve();
      }
      const s = r.median_step_ms / 1000;
      const ref = PYTORCH[preset];
      const versus =
        ref && ref.batch === batch && r.size === 352
          ? ` = ${(s / ref.seconds).toFixed(2)}× PyTorch's ${ref.seconds} s (goal ≤ ${GOAL}×: ${s <= GOAL * ref.seconds ? 'met' : 'not met'})`
          : ref
            ? ` (PyTorch baseline is for batch ${ref.batch} at 352²: ${ref.seconds} s)`
            : '';
      console.log(
        `${preset.padEnd(8)} batch ${batch}, ${r.size}², ${r.outChannels} out, ${values.strategy}, ${r.threads} threads: ` +
          `median step ${s.toFixed(2)} s over ${r.step_ms.length} (${r.step_ms.map((m) => (m / 1000).toFixed(2)).join(', ')})${versus}\n` +
          `         ${r.nodes} nodes, ${r.forward_gflop.toFixed(0)} + ${(r.total_gflop - r.forward_gflop).toFixed(0)} GFLOP (forward + backward/AdamW) = ${(r.total_gflop / s).toFixed(1)} GFLOP/s; ${r.trainable.toLocaleString('en')} trainable / ${r.frozen.toLocaleString('en')} frozen, model ${r.model_mb.toFixed(0)} MB; ` +
          `saved for backward ${r.saved_gb.toFixed(1)} GB; build ${(r.build_ms / 1000).toFixed(1)} s, serialise ${(r.serialize_ms / 1000).toFixed(1)} s, session ${(r.session_ms / 1000).toFixed(1)} s; ` +
          `peak RSS ${r.peak_rss_mb.toFixed(0)} MB (after build ${r.peak_rss_after_build_mb.toFixed(0)}, after session ${r.peak_rss_after_session_mb.toFixed(0)})`,
      );
      if (r.profile) {
        const phases = Object.entries(r.profile.byPhase).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)} s`);
        console.log(`         profile (ONNX Runtime, per step over ${r.profile.runs} steps, ${r.profile.file}): ${phases.join(', ')}; top op types:`);
        for (const [key, ms, calls] of r.profile.top.slice(0, 25)) console.log(`           ${key.padEnd(34)} ${(ms / 1000).toFixed(3).padStart(7)} s  ${String(calls).padStart(5)} calls`);
      }
      resolve();
    });
  });
}

if (values.child) {
  await measure(values.preset!, Number(values.batch));
} else {
  const runs: [string, number][] = values.preset
    ? [[values.preset, Number(values.batch ?? PYTORCH[values.preset]?.batch ?? 1)]]
    : [
        ['hiera_t', Number(values.batch ?? 4)],
        ['hiera_l', Number(values.batch ?? 2)],
      ];
  console.log(`threads ${threads}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, free memory ${mb(freemem())}`);
  for (const [preset, batch] of runs) await runChild(preset, batch);
  console.log(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}
