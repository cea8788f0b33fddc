/**
 * DICOM series load time: the 155-file BraTS FLAIR phantom (shuffled files + one non-DICOM
 * file), median of 5 loads after one warm-up. Reference: pydicom 2.3 (dcmread of every file,
 * sort by position, np.stack of pixel_array) took 0.16 s on the project machine.
 * Run: npx tsx test/bench/dicom-load.bench.ts
 */
import path from 'node:path';
import { loadDicom } from '../../main/core/io/dicom/index.ts';

const dir = path.resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001_flair_dicom');
const runs = Number(process.argv[2] ?? 5);

await loadDicom([dir]); // warm-up: module compilation, file cache
const times: number[] = [];
const cpu: number[] = [];
let dims = '';
for (let i = 0; i < runs; i++) {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const { series } = await loadDicom([dir]);
  times.push(performance.now() - started);
  const used = process.cpuUsage(cpuStarted);
  cpu.push((used.user + used.system) / 1000);
  dims = series[0]!.dims.join('×');
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// on a shared machine wall time includes waiting for a core; CPU time (all threads) does not
console.log(`dicom load ${dims} (155 files): wall median ${median(times).toFixed(1)} ms of ${runs} [${times.map((t) => t.toFixed(1)).join(', ')}]`);
console.log(`  CPU time median ${median(cpu).toFixed(1)} ms; load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);
console.log(`peak RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
