/**
 * ONNX Runtime sessions: execution-provider choice with named fallbacks, and `SessionClient`, which
 * runs a session in its own worker thread (InferenceSession.run blocks the thread that calls it).
 *
 * Provider order for `auto` (architecture.md): CUDA (Linux/Windows, when ORT's CUDA provider
 * library is installed beside the binding), DirectML (Windows), CoreML (macOS), WebGPU, CPU.
 * onnxruntime-node's names: 'cuda', 'dml', 'coreml', 'webgpu', 'cpu'.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../util/worker.ts';
import { ChannelClient } from '../rpc/channel.ts';
import { nodePortTransport, transferList } from '../rpc/ports.ts';
import { UserError, FileError, errorMessage } from '../errors.ts';

export const DEVICES = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export type Provider = Exclude<Device, 'auto'>;

export const PROVIDER_LABEL: Record<Provider, string> = { cpu: 'CPU', cuda: 'CUDA', dml: 'DirectML', coreml: 'CoreML', webgpu: 'WebGPU' };

export function parseDevice(value: string | undefined): Device {
  const v = (value ?? 'auto').toLowerCase();
  if (!(DEVICES as readonly string[]).includes(v)) throw new UserError(`unknown device "${value}"; choose one of ${DEVICES.join(', ')}`);
  return v as Device;
}

/** Physical cores (hyper-threads share a core's FP units, so more ORT threads only contend). */
export function physicalCores(): number {
  if (process.platform === 'linux') {
    try {
      const text = readFileSync('/proc/cpuinfo', 'utf8');
      const cores = new Set<string>();
      let physical = '0';
      for (const line of text.split('\n')) {
        const [k, v] = line.split(':').map((s) => s.trim());
        if (k === 'physical id') physical = v ?? '0';
        else if (k === 'core id') cores.add(`${physical}:${v}`);
      }
      if (cores.size > 0) return cores.size;
    } catch {
      // fall through
    }
  }
  return Math.max(1, availableParallelism?.() ?? cpus().length);
}

function ortBindingDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** Why a provider cannot be tried on this machine, or undefined when it may work. */
export function providerUnavailable(p: Provider): string | undefined {
  const os = process.platform;
  switch (p) {
    case 'cpu':
      return undefined;
    case 'cuda': {
      if (os !== 'linux' && os !== 'win32') return 'CUDA is only offered on Linux and Windows';
      const dir = ortBindingDir();
      const lib = os === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
      if (!dir || !existsSync(join(dir, lib))) return `ONNX Runtime's CUDA provider library (${lib}) is not installed`;
      return undefined;
    }
    case 'dml':
      return os === 'win32' ? undefined : 'DirectML exists only on Windows';
    case 'coreml':
      return os === 'darwin' ? undefined : 'CoreML exists only on macOS';
    case 'webgpu': {
      if (os === 'linux' && !['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'].some((d) => existsSync(join(d, 'libvulkan.so.1')))) {
        return 'WebGPU on Linux needs a Vulkan loader (libvulkan.so.1), which is not installed';
      }
      return undefined;
    }
  }
}

/** Whether onnxruntime-node offers `p` on this platform at all (others are skipped without a word). */
export function platformOffers(p: Provider): boolean {
  const os = process.platform;
  if (p === 'cuda') return os === 'linux' || os === 'win32';
  if (p === 'dml') return os === 'win32';
  if (p === 'coreml') return os === 'darwin';
  return true;
}

/** Providers to try, best first. */
export function providerCandidates(device: Device): Provider[] {
  if (device !== 'auto') return device === 'cpu' ? ['cpu'] : [device, 'cpu'];
  return ['cuda', 'dml', 'coreml', 'webgpu', 'cpu'];
}

export interface SessionOptions {
  device?: Device;
  /** intra-op threads; default: physical cores */
  threads?: number;
  /** let idle intra-op threads spin between ops (default: sessionSpinning()) */
  spinning?: boolean;
  /** receives fallback notices ("CUDA unavailable: …; using CPU") */
  onMessage?: (message: string) => void;
}

/**
 * Whether ONNX Runtime's idle threads spin while waiting for the next op: off unless
 * SAM2UNET_ORT_SPINNING=1. Spinning saves microseconds per op on an idle machine; on a CPU shared
 * with the UI, the io worker and other processes the spinning threads take the cores the working
 * ones need. On this project's 2-core machine under load (test/bench figures in the issue-19
 * report), one hiera_t session ran in 1.35–1.59 s a slice with spinning and 0.66–0.71 s without
 * (int8), 1.55–1.91 s and 1.40–1.82 s (float32).
 */
export function sessionSpinning(): boolean {
  return process.env.SAM2UNET_ORT_SPINNING === '1';
}

export interface TensorData {
  dims: readonly number[];
  data: Float32Array;
}

export type Feeds = Record<string, TensorData>;

export type Ort = typeof import('onnxruntime-node');

/** onnxruntime-node, whichever way the loader presents the CommonJS module (default export or namespace). */
export async function loadOrt(): Promise<Ort> {
  const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
  return mod.default?.InferenceSession ? mod.default : mod;
}

export interface OpenedSession {
  session: import('onnxruntime-node').InferenceSession;
  provider: Provider;
  threads: number;
  /** fallback notices, in order */
  messages: string[];
}

/**
 * Creates an InferenceSession in the calling thread, trying providers in order. A provider that
 * was asked for explicitly (or, under auto, looked available) and fails produces a named message.
 */
export async function openSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<OpenedSession> {
  const ort = await loadOrt();
  const device = opts.device ?? 'auto';
  const threads = opts.threads ?? physicalCores();
  const messages: string[] = [];
  const note = (m: string): void => {
    messages.push(m);
    opts.onMessage?.(m);
  };
  if (typeof model === 'string' && !existsSync(model)) throw new FileError(model, 'model file not found');
  const candidates = providerCandidates(device);
  let lastError: unknown;
  for (const provider of candidates) {
    const reason = providerUnavailable(provider);
    if (reason) {
      if (device === provider) note(`${PROVIDER_LABEL[provider]} requested but unavailable: ${reason}; falling back to CPU`);
      else if (platformOffers(provider)) note(`${PROVIDER_LABEL[provider]} not used: ${reason}`);
      continue;
    }
    try {
      const options: import('onnxruntime-node').InferenceSession.SessionOptions = {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        logSeverityLevel: 3,
        extra: { session: { intra_op: { allow_spinning: (opts.spinning ?? sessionSpinning()) ? '1' : '0' } } },
      };
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      return { session, provider, threads, messages };
    } catch (err) {
      lastError = err;
      const first = errorMessage(err).split('\n')[0]!.slice(0, 300);
      if (provider === 'cpu') break;
      note(`${PROVIDER_LABEL[provider]} failed to start (${first}); trying the next provider`);
    }
  }
  const where = typeof model === 'string' ? model : 'the model';
  throw new UserError(`cannot create an ONNX Runtime session for ${where}: ${errorMessage(lastError)}`);
}

// ---- worker-backed client ----

/** What the session worker says when its model is open. */
export interface SessionReady {
  provider: Provider;
  threads: number;
  messages: string[];
  inputNames: string[];
  outputNames: string[];
}

/** The session worker's methods (session-worker.ts serves them on its channel). */
export interface SessionWorkerCalls {
  /** opens the model; fallback notices stream as the call's progress (strings) */
  create: { request: { model: Uint8Array | string; options: SessionOptions }; reply: SessionReady };
  run: { request: { feeds: Record<string, { dims: number[]; data: Float32Array }> }; reply: Record<string, { dims: number[]; data: Float32Array }> };
}

const ENTRY = new URL('./session-worker.ts', import.meta.url);

/** An InferenceSession in its own worker thread, reached over a channel (rpc/channel.ts). */
export class SessionClient {
  private closed = false;
  /** runs in flight: dispose waits for them */
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(
    private readonly worker: Worker,
    private readonly channel: ChannelClient,
    readonly provider: Provider,
    readonly threads: number,
    /** fallback notices given while the session was created */
    readonly messages: readonly string[],
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    worker.once('exit', () => (this.closed = true));
  }

  /**
   * Starts a worker and opens the model in it. A Uint8Array model's buffer is transferred to the
   * worker (the caller must not use it afterwards); a path is read by ONNX Runtime itself.
   */
  static async create(model: Uint8Array | string, opts: SessionOptions = {}): Promise<SessionClient> {
    if (typeof model === 'string' && !existsSync(model)) throw new FileError(model, 'model file not found');
    const worker = startTsWorker(ENTRY);
    const channel = new ChannelClient(nodePortTransport(worker, 'the inference worker'));
    const request: SessionWorkerCalls['create']['request'] = { model, options: { device: opts.device, threads: opts.threads, spinning: opts.spinning } };
    const ready = await channel
      .call<SessionReady>('create', request, {
        transfer: typeof model === 'string' ? [] : transferList([model]),
        onProgress: (note) => opts.onMessage?.(String(note)),
      })
      .catch(async (err: unknown) => {
        channel.close();
        await worker.terminate();
        throw err;
      });
    return new SessionClient(worker, channel, ready.provider, ready.threads, ready.messages, ready.inputNames, ready.outputNames);
  }

  /**
   * Runs the model. The feeds' buffers are transferred to the worker (zero copy): the caller must
   * not touch them afterwards, unless `copy` is set. Output buffers are transferred back.
   */
  run(feeds: Feeds, opts: { copy?: boolean } = {}): Promise<Record<string, TensorData & { data: Float32Array }>> {
    if (this.closed) return Promise.reject(new Error('the session was disposed'));
    const payload: SessionWorkerCalls['run']['request']['feeds'] = {};
    for (const [name, t] of Object.entries(feeds)) payload[name] = { dims: [...t.dims], data: opts.copy ? t.data.slice() : t.data };
    const running = this.channel.call<SessionWorkerCalls['run']['reply']>('run', { feeds: payload }, { transfer: transferList(Object.values(payload).map((t) => t.data)) });
    const settled = running.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return running;
  }

  /**
   * Closes the session. Runs already inside ONNX Runtime finish first: terminating a worker in
   * the middle of session.run takes the whole process down with a native error.
   */
  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    this.channel.close('the session was disposed');
    await this.worker.terminate();
  }
}
