/**
 * Worker threads running the project's code: its TypeScript through tsx from source, or the
 * compiled entries beside the bundle. (Errors cross a worker boundary through rpc/errors.ts,
 * like every other boundary.)
 */
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const BOOTSTRAP = new URL('../onnx/worker-bootstrap.mjs', import.meta.url);

/** true in the compiled app (esbuild's define, scripts/build-app.mjs); undeclared when the sources run */
declare const __SAM2UNET_BUNDLE__: boolean | undefined;
const BUNDLED = typeof __SAM2UNET_BUNDLE__ !== 'undefined' && __SAM2UNET_BUNDLE__;

/**
 * Starts a worker whose entry point is the TypeScript module at `entry`. From source (the CLI
 * through bin/sam2unet.mjs, the tests) it runs through worker-bootstrap.mjs, which registers
 * tsx. In the compiled app it runs the worker bundle that scripts/build-app.mjs compiled from
 * that entry: esbuild names each output after its entry file (job-worker.ts → job-worker.cjs)
 * and writes it beside the bundle running this code, so callers keep naming their `.ts` entry
 * and the list of entries lives in one place, the build script (WORKER_ENTRIES).
 */
export function startTsWorker(entry: URL, workerData: Record<string, unknown> = {}): Worker {
  if (BUNDLED) return new Worker(compiledWorker(entry), { workerData });
  return new Worker(BOOTSTRAP, { workerData: { ...workerData, entry: entry.href } });
}

function compiledWorker(entry: URL): string {
  const file = join(__dirname, `${basename(fileURLToPath(entry), '.ts')}.cjs`);
  if (!existsSync(file)) throw new Error(`no compiled worker ${file} for ${basename(fileURLToPath(entry))}: list it in WORKER_ENTRIES of scripts/build-app.mjs`);
  return file;
}

/**
 * Lowers the calling worker thread's scheduling priority, and so that of the threads it starts
 * (ONNX Runtime's pool inherits it). On a machine with few cores the compute threads would
 * otherwise take turns with the thread that serves the UI, which then stalls for a whole
 * time slice. Linux only: there the nice value is per thread (setpriority on "process" 0 is the
 * calling thread); elsewhere it would lower the whole process, UI included.
 */
export function yieldToInteractiveThreads(): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(0, 10);
  } catch {
    // not permitted (some containers): run at normal priority
  }
}
