import { defineCommand, rangedOption, requireOption, stringOption, type OptionSpec } from '../command.ts';
import { UserError } from '../../core/errors.ts';
import segment from './segment.ts';
import { RUN_FLAGS } from '../cohort.ts';

const runOptions = Object.fromEntries(RUN_FLAGS.map((flag) => [flag, segment.options[flag]!])) as Record<string, OptionSpec>;

export default defineCommand({
  name: 'queue',
  summary: 'a cohort over many machines: submit its studies to a BullMQ queue on Redis, follow it, collect the summary',
  usage: 'queue submit <cohort folder> --out <shared folder> --redis <URL> [options] | queue status --redis <URL> | queue collect --out <shared folder> [--redis <URL>]',
  options: {
    out: { type: 'string', valueName: 'dir', description: 'submit, collect: the output folder, shared by every worker' },
    redis: { type: 'string', valueName: 'URL', description: 'the Redis server, e.g. redis://10.0.0.5:6379' },
    queue: { type: 'string', valueName: 'name', description: 'the queue (default sam2unet-segment)' },
    ...runOptions,
    attempts: { type: 'string', valueName: 'N', description: 'submit: tries per study for errors that may pass (default 3; a problem in the study fails at once)' },
    backoff: { type: 'string', valueName: 'ms', description: 'submit: delay before the first retry, doubling each time (default 10000)' },
    again: { type: 'boolean', description: 'submit: queue again the studies whose jobs finished (e.g. after their files changed); up-to-date studies are still skipped by the workers' },
    json: { type: 'boolean', description: 'machine-readable output' },
  },
  details:
    'submit: one job per study of the cohort (a folder whose sub-folders are studies); a study submitted\n' +
    'again with the same output folder and settings is not queued twice. The settings (model, channels,\n' +
    'post-processing …) are those of `segment`. Workers (`sam2unet worker`) write each study to\n' +
    '<out>/<case>/ exactly as `segment` does.\n' +
    'status: jobs waiting, running (with progress and worker), done and failed; the workers connected.\n' +
    'collect: writes <out>/cohort.csv, cohort.json, cohort.html and cohort.pdf, as the single-machine run\n' +
    'does; with --redis, cases still queued or running are marked pending and jobs that failed in the\n' +
    'queue itself are reported with their reason.',
  async run(args, io) {
    const [action, ...rest] = args.positionals;
    const json = args.values.json === true;
    const queue = stringOption(args, 'queue');
    const cohortModule = await import('../../core/cohort/queue.ts');
    switch (action) {
      case 'submit': {
        if (rest.length !== 1) throw new UserError('queue submit takes one cohort folder (see --help)');
        const out = requireOption(args, 'out');
        const redis = requireOption(args, 'redis');
        const attempts = rangedOption(args, 'attempts', { integer: true, min: 1, max: 100 });
        const backoff = rangedOption(args, 'backoff', { min: 0 });
        const [{ findCohort }, { runFlags }] = await Promise.all([import('../../core/cohort/find.ts'), import('../cohort.ts')]);
        const flags = await runFlags(args);
        const cohort = (await findCohort(rest[0]!, { explicit: true }))!;
        for (const note of cohort.notes) io.stderr(`note: ${note}\n`);
        const result = await cohortModule.submitCohort(cohort, out, { model: flags.model, channels: flags.channels, batch: flags.batch, postprocess: flags.postprocess, dicomSeg: flags.dicomSeg }, { redis, queue }, { attempts, backoffMs: backoff, again: args.values.again === true });
        if (json) io.stdout(`${JSON.stringify(result)}\n`);
        else io.stdout(`${result.added} studies queued on ${result.queue} at ${cohortModule.redisLabel(redis)}${result.existing ? ` (${result.existing} queued before: not added again${args.values.again === true ? '' : '; --again queues the finished ones again'})` : ''}\n`);
        return 0;
      }
      case 'status': {
        if (rest.length) throw new UserError('queue status takes no folder (see --help)');
        const redis = requireOption(args, 'redis');
        const status = await cohortModule.queueStatus({ redis, queue });
        if (json) {
          io.stdout(`${JSON.stringify(status)}\n`);
          return 0;
        }
        const c = status.counts;
        const lines = [`${status.queue} at ${cohortModule.redisLabel(redis)}: ${c.waiting} waiting, ${c.active} running, ${c.completed} done, ${c.failed} failed, ${c.delayed} waiting to retry`, `workers: ${status.workers.length ? status.workers.join(', ') : 'none connected'}`];
        for (const a of status.active) {
          const p = a.progress as { done?: number; total?: number } | number | undefined;
          const share = typeof p === 'object' && p && p.total ? ` ${Math.round((100 * (p.done ?? 0)) / p.total)}%` : '';
          lines.push(`running  ${a.case}${share} on ${a.worker ?? '?'} (attempt ${a.attempt})`);
        }
        for (const f of status.failed) lines.push(`failed   ${f.case}: ${f.reason} (${f.attempts} attempt${f.attempts === 1 ? '' : 's'})`);
        if (status.counts.failed > status.failed.length) lines.push(`… and ${status.counts.failed - status.failed.length} more failed (queue collect lists them all)`);
        io.stdout(`${lines.join('\n')}\n`);
        return 0;
      }
      case 'collect': {
        if (rest.length) throw new UserError('queue collect takes no folder; name the output folder with --out (see --help)');
        const out = requireOption(args, 'out');
        const redis = stringOption(args, 'redis');
        const { summary, files } = await cohortModule.collectCohort(out, redis ? { redis, queue } : undefined);
        const list = [files.csv, files.json, files.html, files.pdf];
        if (json) io.stdout(`${JSON.stringify({ counts: summary.counts, files: list })}\n`);
        else {
          const { rowLine } = await import('../cohort.ts');
          for (const row of summary.cases) io.stdout(`${rowLine(row)}\n`);
          const k = summary.counts;
          io.stdout(`${k.done} done, ${k.failed} failed, ${k.pending} not done yet\n`);
          for (const f of list) io.stdout(`wrote ${f}\n`);
        }
        const { EXIT_SOME_FAILED } = await import('../cohort.ts');
        return summary.counts.failed ? EXIT_SOME_FAILED : 0;
      }
      default:
        throw new UserError(action ? `queue: unknown action "${action}"; use submit, status or collect` : 'queue needs an action: submit, status or collect (see --help)');
    }
  },
});
