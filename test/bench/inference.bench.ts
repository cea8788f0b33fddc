/**
 * Inference benchmark: per-slice latency and peak memory of SAM2-UNet on hiera_t and hiera_l at
 * 352² (random weights, CPU), each in its own process so that peak RSS is the model's own, plus
 * ORT's raw MatMul throughput measured just before (it shows how loaded the machine is).
 * Run: npx tsx test/bench/inference.bench.ts [--runs 5] [--threads N] [--presets hiera_t,hiera_l]
 * Prints figures; never passes or fails.
 */
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs, promisify } from 'node:util';
import { Graph } from '../../main/core/onnx/ir.ts';
import { loadOrt, physicalCores } from '../../main/core/onnx/session.ts';
import { joinChunks, serializeModel } from '../../main/core/onnx/writer.ts';

/** PyTorch (official code, CPU, 2 threads) seconds per 352² slice, recorded on this machine. */
const PYTORCH_S: Record<string, number> = { hiera_t: 0.68, hiera_l: 3.82 };

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, threads: { type: 'string' }, presets: { type: 'string', default: 'hiera_t,hiera_l' } } });
const threads = values.threads ? Number(values.threads) : physicalCores();

async function matmulGflops(): Promise<number> {
  const n = 1024;
  const g = new Graph();
  const a = g.input('a', 'float32', [8, n, n]);
  const b = g.constant(new Float32Array(n * n).fill(0.001), [n, n]);
  g.output('c', g.matmul(a, b));
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
  const feed = { a: new ort.Tensor('float32', new Float32Array(8 * n * n).fill(1), [8, n, n]) };
  await session.run(feed);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await session.run(feed);
    times.push(performance.now() - t);
  }
  await session.release();
  return (2 * 8 * n * n * n) / (Math.min(...times) / 1000) / 1e9;
}

const run = promisify(execFile);
console.log(`threads ${threads}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const IDLE_MATMUL_GFLOPS = 138;
for (const preset of values.presets!.split(',')) {
  // ORT's raw MatMul throughput just before: on a shared machine it says how much CPU we really get
  const raw = await matmulGflops();
  console.log(`ORT MatMul throughput now: ${raw.toFixed(1)} GFLOP/s (recorded idle figure ≈ ${IDLE_MATMUL_GFLOPS} on 2 threads)`);
  const args = ['bin/sam2unet.mjs', 'bench', '--preset', preset, '--size', '352', '--batch', '1', '--runs', values.runs!, '--device', 'cpu', '--threads', String(threads), '--json'];
  const { stdout, stderr } = await run(process.execPath, args, { maxBuffer: 1 << 20 });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  const sec = (r.per_slice_ms as number) / 1000;
  const ratio = PYTORCH_S[preset] ? ` = ${(sec / PYTORCH_S[preset]).toFixed(2)}× PyTorch's ${PYTORCH_S[preset]} s` : '';
  console.log(
    `${preset.padEnd(8)} per slice ${sec.toFixed(3)} s (min ${((r.min_ms as number) / 1000).toFixed(3)} s)${ratio}; ${r.gflops} GFLOP/s of ${r.model_gflop} GFLOP; ` +
      `build ${r.build_ms} ms, session ${r.session_ms} ms; peak RSS ${r.peak_rss_mb} MB`,
  );
  const efficiency = (r.gflops as number) / raw;
  const floor = (r.model_gflop as number) / IDLE_MATMUL_GFLOPS;
  const versus = (sec: number): string => (PYTORCH_S[preset] ? ` = ${(sec / PYTORCH_S[preset]).toFixed(2)}× PyTorch` : '');
  console.log(
    efficiency <= 1
      ? `${''.padEnd(8)} model / raw MatMul throughput ${efficiency.toFixed(2)}: if that ratio holds on an idle machine, ${(floor / efficiency).toFixed(3)} s per slice${versus(floor / efficiency)} (projection)`
      : `${''.padEnd(8)} model / raw MatMul throughput ${efficiency.toFixed(2)} > 1: the load changed between the two measurements, no projection; ` +
          `FLOP floor at the idle MatMul rate ${floor.toFixed(3)} s${versus(floor)}`,
  );
  if (process.env.BENCH_VERBOSE) console.log(stderr);
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
