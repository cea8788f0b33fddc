// Memory settings the workstation runs with, applied by relaunching the process once (glibc
// reads its tunables only at start-up). Opening a study allocates tens of megabytes per volume;
// by default glibc hands such blocks straight back to the kernel when they are freed, so every
// study opened pays first-touch page faults again — on virtual machines that is most of the
// time it takes to open a BraTS case. These settings keep blocks of up to 32 MB in the heap
// for reuse (up to 256 MB of free heap is kept) and back large blocks with transparent huge
// pages. Linux/glibc only; elsewhere (and on musl) nothing changes. SAM2UNET_MEMORY_TUNING=off
// turns it off.
import { spawn } from 'node:child_process';

export const MEMORY_TUNABLES = 'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456';

export function memoryTuningApplies(env = process.env) {
  return process.platform === 'linux' && env.SAM2UNET_MEMORY_TUNING !== 'off' && !(env.GLIBC_TUNABLES ?? '').includes(MEMORY_TUNABLES);
}

export function tunedEnvironment(env = process.env) {
  return { ...env, GLIBC_TUNABLES: env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${MEMORY_TUNABLES}` : MEMORY_TUNABLES };
}

/**
 * Runs this same command again with the tunables and exits with its status; returns false (and
 * does nothing) when they are in force already or do not apply.
 */
export function relaunchWithMemoryTuning() {
  if (process.env.SAM2UNET_RELAUNCHED === '1' && process.channel) {
    // The relaunched process dies with the one that started it, even by SIGKILL (which cannot
    // be forwarded): its IPC channel closes then. The channel must not keep it alive otherwise.
    process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
    process.channel.unref();
    return false;
  }
  if (!memoryTuningApplies()) return false;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...tunedEnvironment(), SAM2UNET_RELAUNCHED: '1' },
  });
  // Ctrl-C reaches the child through the terminal's process group: the child decides (training
  // writes a checkpoint first); this process only waits for it.
  process.on('SIGINT', () => {});
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('error', (err) => {
    process.stderr.write(`sam2unet: could not start (${err.message})\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(signal ? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1) : (code ?? 1)));
  return true;
}
