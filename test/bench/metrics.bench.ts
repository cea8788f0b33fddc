/**
 * Time of evaluateVolume (3 BraTS regions, HD95 included) and of per-slice metrics on a phantom.
 * Run: npx tsx test/bench/metrics.bench.ts
 */
import { readNifti } from '../../main/core/io/nifti.ts';
import { evaluateSlices, evaluateVolume, regionsFor } from '../../main/core/metrics/index.ts';

const caseName = 'BraTS20_Training_002';
const file = new URL(`../../../shared/data/phantoms/${caseName}/${caseName}_seg.nii.gz`, import.meta.url).pathname;
const volume = (await readNifti(file)).volumes[0]!;
const gt = volume.data as Uint8Array;
const dims = volume.dims;
// a plausible imperfect prediction: the ground truth shifted by (2, 1, 1) voxels
const pred = new Uint8Array(gt.length);
const [nx, ny, nz] = dims;
for (let z = 0; z + 1 < nz; z++)
  for (let y = 0; y + 1 < ny; y++)
    for (let x = 0; x + 2 < nx; x++) pred[((z + 1) * ny + y + 1) * nx + x + 2] = gt[(z * ny + y) * nx + x]!;

const regions = regionsFor('brats');
function time(label: string, runs: number, fn: () => unknown): void {
  fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wall.push(performance.now() - t0);
    cpu.push(process.cpuUsage(c0).user / 1000);
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
  // CPU time is the figure to read on a shared machine; wall time includes waiting for a core
  console.log(`${label}: median wall ${median(wall).toFixed(1)} ms, median CPU ${median(cpu).toFixed(1)} ms (${runs} runs)`);
}
console.log(`${caseName}, ${dims.join('×')}, regions ${regions.map((r) => r.name).join(', ')}`);
time('evaluateVolume (overlap + HD95, 1 mm)', 7, () => evaluateVolume(pred, gt, dims, [1, 1, 1], regions));
time('evaluateVolume (overlap + HD95, 0.9×1.1×2.5 mm)', 7, () => evaluateVolume(pred, gt, dims, [0.9, 1.1, 2.5], regions));
time('evaluateVolume (overlap only)', 7, () => evaluateVolume(pred, gt, dims, [1, 1, 1], regions, { hd95: false }));
time(`evaluateSlices (${nz} slices, 2D HD95)`, 5, () => evaluateSlices(pred, gt, dims, [1, 1, 1], regions));
time(`evaluateSlices (${nz} slices, overlap only)`, 5, () => evaluateSlices(pred, gt, dims, [1, 1, 1], regions, { hd95: false }));
console.log(`peak RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
