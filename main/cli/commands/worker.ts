import { defineCommand, rangedOption, requireOption, stringOption } from '../command.ts';
import { UserError } from '../../core/errors.ts';

export default defineCommand({
  name: 'worker',
  summary: 'segment the studies of a queued cohort (BullMQ on Redis), on this machine, until stopped',
  usage: 'worker --redis <URL> [--concurrency N] [--device auto|cpu|cuda|…] [options]',
  options: {
    redis: { type: 'string', valueName: 'URL', description: 'the Redis server of the queue, e.g. redis://10.0.0.5:6379' },
    queue: { type: 'string', valueName: 'name', description: 'the queue (default sam2unet-segment)' },
    concurrency: { type: 'string', valueName: 'N', description: 'studies segmented at once on this machine, each with its own loaded model (default 1)' },
    device: { type: 'string', valueName: 'auto|cpu|cuda|dml|coreml|webgpu', description: "this machine's execution provider (default: the one submitted, else auto)" },
    name: { type: 'string', valueName: 'name', description: "this worker's name in `queue status` and in the case records (default host:pid)" },
    'lock-duration': { type: 'string', valueName: 'ms', description: "how long a study's job stays this worker's without a sign of life: a dead worker's study goes to another after this (default 30000)" },
    'stalled-interval': { type: 'string', valueName: 'ms', description: 'how often this worker looks for studies of dead workers (default 30000)' },
  },
  details:
    'Every machine running a worker must see the cohort and its output folder at the same paths (a\n' +
    'shared folder). A worker keeps its model loaded between studies. A study failing for a reason in\n' +
    'its data (an unreadable file, a missing sequence) fails at once; other errors are retried with\n' +
    'backoff. Ctrl-C (or SIGTERM) stops taking studies and finishes the running ones; a second Ctrl-C\n' +
    'stops at once (the running studies go back to the queue when their lock expires).',
  async run(args, io) {
    if (args.positionals.length) throw new UserError('worker takes no positional arguments (see --help)');
    const redis = requireOption(args, 'redis');
    const concurrency = rangedOption(args, 'concurrency', { integer: true, min: 1, max: 64 }, 1);
    const lockDuration = rangedOption(args, 'lock-duration', { integer: true, min: 1, max: 3_600_000 });
    const stalledInterval = rangedOption(args, 'stalled-interval', { integer: true, min: 1, max: 3_600_000 });
    const { parseDevice } = await import('../../core/onnx/session.ts');
    const deviceFlag = stringOption(args, 'device');
    const device = deviceFlag === undefined ? undefined : parseDevice(deviceFlag);
    const { startWorker } = await import('../../core/cohort/queue.ts');
    const worker = startWorker(
      { redis, queue: stringOption(args, 'queue') },
      { concurrency, ...(device ? { device } : {}), lockDuration, stalledInterval, name: stringOption(args, 'name'), log: (line) => io.stderr(`${line}\n`) },
    );
    let stops = 0;
    const stop = (signal: string) => {
      stops++;
      if (stops === 1) {
        io.stderr(`[${worker.name}] ${signal}: finishing the running studies, taking no more (again to stop at once)\n`);
        void worker.close(false);
      } else {
        io.stderr(`[${worker.name}] stopping now\n`);
        process.exit(130);
      }
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    try {
      await worker.closed;
      io.stderr(`[${worker.name}] stopped\n`);
      return 0;
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
  },
});
