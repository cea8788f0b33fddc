/**
 * Which execution providers load on this machine, and why the others do not: what the installed
 * onnxruntime-node ships (its listSupportedBackends: bundled in the binding, or an add-on its install
 * script downloads), the platform's own (DirectML on Windows, CoreML on macOS), and a real attempt
 * to run a one-node model on each. ONNX Runtime writes native errors to the process's stderr, and a
 * GPU driver may abort the process: `sam2unet device-check` runs each attempt in a child process.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { errorMessage } from '../errors.ts';
import { Graph } from './ir.ts';
import { joinChunks, serializeModel } from './writer.ts';
import { loadOrt, PROVIDER_LABEL, providerUnavailable, type Provider } from './session.ts';

/** onnxruntime-node's name of each provider (its listSupportedBackends and executionProviders). */
export const ORT_PROVIDER_NAMES = ['cpu', 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu'] as const;
export type OrtProviderName = (typeof ORT_PROVIDER_NAMES)[number];

export interface ProviderCandidate {
  name: OrtProviderName;
  label: string;
  /** what the installed package says: true = inside the binding, false = an add-on to install, null = not listed */
  bundled: boolean | null;
  /** the app runs models on it (DEVICES); tensorrt is listed by onnxruntime-node but not used here */
  usedByApp: boolean;
}

const LABELS: Record<OrtProviderName, string> = { ...PROVIDER_LABEL, tensorrt: 'TensorRT' };

/** The providers worth trying here: the package's list plus the platform's own. */
export async function providerCandidates(): Promise<ProviderCandidate[]> {
  const ort = await loadOrt();
  const listed = new Map<string, boolean>();
  try {
    for (const b of (ort as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] }).listSupportedBackends?.() ?? []) listed.set(b.name, b.bundled);
  } catch {
    // an older binding without the list: the platform rules below still apply
  }
  // every provider the app knows is reported (with why it does not load); TensorRT only when the package lists it
  return ORT_PROVIDER_NAMES.filter((name) => name !== 'tensorrt' || listed.has(name)).map((name) => ({
    name,
    label: LABELS[name],
    bundled: listed.has(name) ? listed.get(name)! : null,
    usedByApp: name !== 'tensorrt',
  }));
}

export interface ProbeResult {
  loads: boolean;
  /** ONNX Runtime's error, first line */
  error?: string;
  ms?: number;
}

/** Runs y = x + x on `provider` alone (no CPU fallback) in this process. */
export async function probeProvider(provider: OrtProviderName): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const ort = await loadOrt();
    const g = new Graph();
    const x = g.input('x', 'float32', [4]);
    g.output('y', g.add(x, x));
    const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { executionProviders: [provider], logSeverityLevel: 3 });
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [4]) });
    await session.release();
    const y = Array.from(out.y!.data as Float32Array);
    if (y.join() !== '2,4,6,8') return { loads: false, error: `ran but computed [${y.join(', ')}] for 2·[1, 2, 3, 4]` };
    return { loads: true, ms: performance.now() - started };
  } catch (err) {
    return { loads: false, error: plainOrtError(errorMessage(err)) };
  }
}

/** What stands in the way of a provider on this machine, in words (before trying it). */
export function providerObstacles(name: OrtProviderName): string[] {
  const out: string[] = [];
  const known = (['cpu', 'cuda', 'dml', 'coreml', 'webgpu'] as const).includes(name as Provider) ? providerUnavailable(name as Provider) : undefined;
  if (known) out.push(known);
  if ((name === 'cuda' || name === 'tensorrt') && process.platform === 'linux') {
    if (!existsSync('/dev/nvidiactl') && !existsSync('/dev/nvidia0')) out.push('no NVIDIA GPU device (/dev/nvidia0) is present');
    const found = cudaRuntimes();
    if (!found.some((r) => r.major === 12)) {
      const others = found.length ? ` (found: ${found.map((r) => `CUDA ${r.major} in ${r.dir}`).join(', ')})` : '';
      out.push(`no CUDA 12 runtime (libcudart.so.12)${others}; onnxruntime-node 1.30's CUDA provider needs CUDA 12 and cuDNN 9`);
    }
  }
  if (name === 'tensorrt') out.push('TensorRT is not among the providers the app uses');
  return out;
}

/** CUDA runtimes (libcudart.so.N) in the usual places. */
function cudaRuntimes(): { major: number; dir: string }[] {
  const dirs = ['/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64'];
  try {
    for (const entry of readdirSync('/usr/local')) if (/^cuda-[\d.]+$/.test(entry)) dirs.push(`/usr/local/${entry}/lib64`, `/usr/local/${entry}/lib`);
  } catch {
    // no /usr/local
  }
  const found: { major: number; dir: string }[] = [];
  for (const dir of dirs) {
    try {
      for (const f of readdirSync(dir)) {
        const m = /^libcudart\.so\.(\d+)$/.exec(f);
        if (m && !found.some((r) => r.dir === dir && r.major === Number(m[1]))) found.push({ major: Number(m[1]), dir });
      }
    } catch {
      // not there
    }
  }
  return found;
}

/** ONNX Runtime's error without the source location and function signature in front of it. */
export function plainOrtError(message: string): string {
  const first = message.split('\n')[0]!.trim();
  const cut = first.lastIndexOf(' was false. ');
  const text = cut >= 0 ? first.slice(cut + ' was false. '.length) : first.replace(/^\/onnxruntime_src\/\S+ /, '');
  return text.slice(0, 400);
}

/** The CPU's model name and the instruction sets that decide int8 speed. */
export function cpuDescription(): { model: string; cores: number; flags: string[] } {
  const model = cpus()[0]?.model ?? 'unknown';
  let flags: string[] = [];
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags')) ?? '';
    const all = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    flags = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_int8'].filter((f) => all.has(f));
  } catch {
    // no /proc/cpuinfo (Windows, macOS)
  }
  return { model, cores: cpus().length, flags };
}
