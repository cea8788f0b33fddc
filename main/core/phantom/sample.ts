/**
 * The sample study the first screen offers ("Open a sample study"): one generated BraTS-like
 * phantom case with ground truth, written once into the app's (or server's) data folder and
 * reused afterwards. Generating a case takes seconds of CPU, so it runs in a worker thread: the
 * process serving the UI keeps answering meanwhile.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.ts';
import { startTsWorker } from '../util/worker.ts';
import { PHANTOM_SEQUENCES } from './generate.ts';

/** Seed and case number of the sample: always the same case, so a reopened sample is the one seen before. */
export const SAMPLE_SEED = 12;
export const SAMPLE_CASE = 1;
/** its case name (folder and file prefix), which says what it is in the study list */
export const SAMPLE_NAME = 'Sample_Phantom';

/** The folder the sample case lives in under `samplesDir`. */
export function sampleStudyDir(samplesDir: string): string {
  return join(samplesDir, SAMPLE_NAME);
}

/** Whether every file of the sample is there (a write interrupted half-way is redone). */
export function sampleStudyComplete(samplesDir: string): boolean {
  const dir = sampleStudyDir(samplesDir);
  return [...PHANTOM_SEQUENCES, 'seg'].every((s) => existsSync(join(dir, `${SAMPLE_NAME}_${s}.nii.gz`)));
}

const ENTRY = new URL('./sample-worker.ts', import.meta.url);

/** Writes the sample case into `samplesDir` unless it is complete there; resolves to its folder. */
export async function ensureSampleStudy(samplesDir: string): Promise<string> {
  if (sampleStudyComplete(samplesDir)) return sampleStudyDir(samplesDir);
  const worker: Worker = startTsWorker(ENTRY, { out: samplesDir, seed: SAMPLE_SEED, index: SAMPLE_CASE, name: SAMPLE_NAME });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (message: { ok: boolean; error?: string }) => (message.ok ? resolve() : reject(new UserError(`could not write the sample study into ${samplesDir}: ${message.error}`))));
    worker.once('error', (err) => reject(new UserError(`could not write the sample study into ${samplesDir}: ${err.message}`)));
    worker.once('exit', (code) => reject(new Error(`the sample study worker stopped (exit code ${code}) before writing ${samplesDir}`)));
  }).finally(() => void worker.terminate());
  return sampleStudyDir(samplesDir);
}
