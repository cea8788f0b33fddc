/**
 * Worker threads running the project's TypeScript without a build step. (Errors cross a worker
 * boundary through rpc/errors.ts, like every other boundary.)
 */
import { setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';

const BOOTSTRAP = new URL('../onnx/worker-bootstrap.mjs', import.meta.url);

/** Starts a worker whose entry point is the TypeScript module at `entry`. */
export function startTsWorker(entry: URL, workerData: Record<string, unknown> = {}): Worker {
  return new Worker(BOOTSTRAP, { workerData: { ...workerData, entry: entry.href } });
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
