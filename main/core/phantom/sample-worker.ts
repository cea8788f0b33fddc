// Worker thread of ensureSampleStudy (sample.ts): generates and writes one phantom case.
// No top-level await: the built app compiles worker entries to CommonJS (scripts/build-app.mjs).
import { parentPort, workerData } from 'node:worker_threads';
import { generatePhantomCase, writePhantomCase } from './index.ts';

const { out, seed, index, name } = workerData as { out: string; seed: number; index: number; name: string };
writePhantomCase(out, { ...generatePhantomCase(seed, index, {}), name }).then(
  () => parentPort!.postMessage({ ok: true }),
  (err: unknown) => parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) }),
);
