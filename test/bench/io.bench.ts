/**
 * Opening speed: a BraTS case (four sequences + seg, all decoded) and the 155-file DICOM FLAIR
 * series, both through openPath; median of 5 after one warm-up, with peak RSS. When a python3
 * with nibabel / pydicom is around, their baselines are measured in the same run the same way
 * (nibabel: load the five files and decode dataobj; pydicom: read the 155 files and stack
 * pixel_array), else the recorded baselines are printed.
 *
 *   npx tsx test/bench/io.bench.ts
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { openPath } from '../../main/core/io/open.ts';
// @ts-expect-error plain ES module of the launcher, no types
import { MEMORY_TUNABLES, tunedEnvironment } from '../../bin/memory-tuning.mjs';

// Measured twice, each in a fresh process: with the memory settings the sam2unet command runs
// with (bin/memory-tuning.mjs), and without them.
if (!process.env.IO_BENCH_MODE) {
  const modes = [
    ['tuned', `as the sam2unet command runs (GLIBC_TUNABLES=${MEMORY_TUNABLES as string})`, { ...(tunedEnvironment as () => NodeJS.ProcessEnv)() }],
    ['untuned', 'an untuned process (SAM2UNET_MEMORY_TUNING=off)', { ...process.env, SAM2UNET_MEMORY_TUNING: 'off' }],
  ] as const;
  for (const [mode, label, env] of modes) {
    console.log(`\n== ${label}`);
    const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!], { stdio: 'inherit', env: { ...env, IO_BENCH_MODE: mode } });
    if (run.status !== 0) process.exit(run.status ?? 1);
  }
  process.exit(0);
}

const shared = resolve(process.cwd(), '../shared/data/phantoms');
const bratsCase = resolve(shared, 'BraTS20_Training_001');
const dicomSeries = resolve(shared, 'BraTS20_Training_001_flair_dicom');
const RECORDED = { nibabel: 0.27, pydicom: 0.16 };
const RUNS = 5;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const peakRssMB = () => process.resourceUsage().maxRSS / 1024;

/** Wall time, and CPU time of the whole process (libuv pool threads included), in seconds. */
async function timeIt(task: () => Promise<unknown>): Promise<{ median: number; all: number[]; cpu: number }> {
  await task(); // warm-up
  const all: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    await task();
    const used = process.cpuUsage(cpuStart);
    all.push((performance.now() - started) / 1000);
    cpu.push((used.user + used.system) / 1e6);
  }
  return { median: median(all), all, cpu: median(cpu) };
}

const PYTHON = String.raw`
import glob, json, os, sys, time
import numpy as np
def bench(task, runs=${RUNS}):
    task()
    times, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        task()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return sorted(times)[len(times) // 2], sorted(cpu)[len(cpu) // 2]
out = {}
case, dicom_dir = sys.argv[1], sys.argv[2]
try:
    import nibabel as nib
    files = [os.path.join(case, os.path.basename(case) + '_' + s + '.nii.gz') for s in ('t1', 't1ce', 't2', 'flair', 'seg')]
    out['nibabel_dataobj'] = bench(lambda: [np.asanyarray(nib.load(f).dataobj) for f in files])
    out['nibabel_fdata'] = bench(lambda: [nib.load(f).get_fdata() for f in files])
except ImportError:
    pass
try:
    import pydicom
    def load_series():
        slices = []
        for f in glob.glob(os.path.join(dicom_dir, '*')):
            try:
                slices.append(pydicom.dcmread(f))
            except Exception:
                pass
        slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        return np.stack([d.pixel_array for d in slices])
    out['pydicom'] = bench(load_series)
except ImportError:
    pass
print(json.dumps(out))
`;

/** name → [median wall s, median CPU s] */
function pythonBaselines(): Record<string, [number, number]> | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    const result = spawnSync(python, ['-c', PYTHON, bratsCase, dicomSeries], { encoding: 'utf8', timeout: 300_000 });
    if (result.status !== 0) continue;
    const parsed = JSON.parse(result.stdout.trim().split('\n').pop()!) as Record<string, [number, number]>;
    if (Object.keys(parsed).length) return parsed;
  }
  return undefined;
}

const fmt = (s: number) => `${s.toFixed(3)} s`;

const brats = await timeIt(async () => {
  const { studies } = await openPath(bratsCase);
  if (studies[0]?.kind !== 'brats' || !studies[0].seg) throw new Error('not opened as a BraTS case with seg');
});
const rssAfterBrats = peakRssMB();
/**
 * The floor under any reader that returns new arrays: allocating and first touching as many
 * bytes as the decoded case holds, with nothing decoded. On a VM where first-touch page faults
 * are expensive this alone can take most of the time above.
 */
const decodedBytes = (await openPath(bratsCase)).studies[0]!;
const totalBytes = [...Object.values(decodedBytes.sequences), decodedBytes.seg!].reduce((n, v) => n + v.data.byteLength, 0);
const floor = await timeIt(async () => {
  const sizes = [...Object.values(decodedBytes.sequences), decodedBytes.seg!].map((v) => v.data.byteLength);
  return sizes.map((n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4096) b[i] = 1;
    return b;
  });
});
const dicom = await timeIt(async () => {
  const { studies } = await openPath(dicomSeries);
  if (Object.values(studies[0]?.sequences ?? {})[0]?.dims[2] !== 155) throw new Error('DICOM series did not load as 155 slices');
});
const rssAfterDicom = peakRssMB();

const line = (r: { median: number; all: number[]; cpu: number }) => `median ${fmt(r.median)} (CPU ${fmt(r.cpu)})  runs ${r.all.map(fmt).join(', ')}`;
console.log(`BraTS case (t1, t1ce, t2, flair, seg decoded): ${line(brats)}  peak RSS ${rssAfterBrats.toFixed(0)} MB`);
console.log(`  floor: allocating + touching its ${(totalBytes / 1e6).toFixed(1)} MB, nothing decoded: ${line(floor)}`);
console.log(`DICOM series (155 files):                       ${line(dicom)}  peak RSS ${rssAfterDicom.toFixed(0)} MB`);

const measured = pythonBaselines();
if (measured) {
  const shown = Object.entries(measured).map(([k, [wall, cpu]]) => `${k} ${fmt(wall)} (CPU ${fmt(cpu)})`);
  console.log(`python baselines measured in this run: ${shown.join(', ')}`);
}
const compare = (label: string, ours: { median: number; cpu: number }, theirs: [number, number] | undefined, recorded: number, goal: string) => {
  if (theirs) {
    console.log(`vs ${label} (measured): ${(ours.median / theirs[0]).toFixed(2)}× its wall time, ${(ours.cpu / theirs[1]).toFixed(2)}× its CPU time${goal}`);
  } else {
    console.log(`vs ${label} (recorded ${fmt(recorded)}): ${(ours.median / recorded).toFixed(2)}× its time${goal}`);
  }
};
compare('nibabel', brats, measured?.nibabel_dataobj, RECORDED.nibabel, ' (goal ≤ 0.5×)');
compare('pydicom', dicom, measured?.pydicom, RECORDED.pydicom, '');
