/**
 * Cohort benchmark: the shared phantoms (four BraTS cases, 240×240×155) segmented as a cohort
 * with the bundled model on this machine, then again (everything up to date). Prints, per study,
 * the wall time and its parts (model, metrics and report, the rest: reading, hashing, writing),
 * the bytes read and written, the model load, and the rerun's time: the figures docs/scaling.md
 * works from.
 *
 *   npx tsx test/bench/cohort.bench.ts [cases]     (default 4)
 *
 * Figures only; nothing passes or fails. The load average is printed: on a shared machine the
 * numbers scale with it.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../main/cli/index.ts';
import { hashStudyInputs } from '../../main/core/cohort/hash.ts';
import type { CohortSummary } from '../../main/core/cohort/summary.ts';
import type { CaseRecord } from '../../main/core/cohort/record.ts';

const count = Number(process.argv[2] ?? 4);
const phantoms = resolve('../shared/data/phantoms');
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-cohort-bench-'));
const cohort = join(tmp, 'cohort');
const out = join(tmp, 'out');
mkdirSync(cohort);
const cases = Array.from({ length: count }, (_, i) => `BraTS20_Training_00${(i % 4) + 1}`);
cases.forEach((c, i) => symlinkSync(join(phantoms, c), join(cohort, i < 4 ? c : `${c}_copy${i}`)));

/** Wall time and CPU time (every thread of this process: ONNX Runtime's pool included) of one cohort run. */
async function run(): Promise<{ ms: number; cpuMs: number; stderr: string }> {
  let stderr = '';
  const started = performance.now();
  const cpu = process.cpuUsage();
  await main(['segment', cohort, '--out', out], { stdout: () => undefined, stderr: (t) => void (stderr += t), interactive: false });
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000, stderr };
}

try {
  console.log(`${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const first = await run();
  const summary = JSON.parse(readFileSync(join(out, 'cohort.json'), 'utf8')) as CohortSummary;
  const load = /model ready in ([\d.]+) s/.exec(first.stderr)?.[1];
  console.log(`first run: ${(first.ms / 1000).toFixed(1)} s for ${count} studies (model load ${load} s); CPU ${(first.cpuMs / 1000).toFixed(1)} s, ${(first.cpuMs / 1000 / count).toFixed(1)} CPU-s per study; load average now ${loadavg()[0]!.toFixed(1)}`);
  for (const row of summary.cases) {
    const record = JSON.parse(readFileSync(join(out, row.case, 'cohort-case.json'), 'utf8')) as CaseRecord;
    const metrics = JSON.parse(readFileSync(join(out, row.case, 'metrics.json'), 'utf8')) as { timings: Record<string, number> };
    const inputs = await hashStudyInputs(join(cohort, row.case));
    const written = record.files.reduce((sum, f) => sum + f.bytes, 0);
    const { inference = 0, metrics: metricsMs = 0 } = metrics.timings;
    console.log(
      `${row.case}: ${record.seconds.toFixed(1)} s = model ${(inference / 1000).toFixed(1)} s + metrics ${(metricsMs / 1000).toFixed(1)} s + rest ${(record.seconds - inference / 1000 - metricsMs / 1000).toFixed(1)} s; read ${(inputs.bytes / 1e6).toFixed(1)} MB in ${inputs.files} files, wrote ${(written / 1e6).toFixed(2)} MB (${record.files.map((f) => `${f.name} ${(f.bytes / 1e3).toFixed(0)} kB`).join(', ')})`,
    );
  }
  const again = await run();
  console.log(`rerun: ${(again.ms / 1000).toFixed(2)} s, CPU ${(again.cpuMs / 1000).toFixed(2)} s (${((100 * again.ms) / first.ms).toFixed(1)} % of the first run)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
