// Worker thread of ensureSampleStudy (sample.ts): generates and writes one phantom case.
import { parentPort, workerData } from 'node:worker_threads';
import { generatePhantomCase, writePhantomCase } from './index.ts';

const { out, seed, index, name } = workerData as { out: string; seed: number; index: number; name: string };
try {
  await writePhantomCase(out, { ...generatePhantomCase(seed, index, {}), name });
  parentPort!.postMessage({ ok: true });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
}
