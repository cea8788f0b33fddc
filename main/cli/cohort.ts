/**
 * `sam2unet segment <folder of studies> --out <dir>`: the command line's face of a cohort run
 * (core/cohort/runner.ts) — a progress bar with ETA over the studies left to segment, one line
 * per study as it ends, the summary files at the end, Ctrl-C to stop (a rerun resumes).
 */
import type { CommandIO, ParsedArgs } from './command.ts';
import { listOption, rangedOption, stringOption } from './command.ts';
import { UserError } from '../core/errors.ts';
import type { Cohort } from '../core/cohort/find.ts';
import type { CohortRunSettings } from '../core/cohort/case-run.ts';
import type { CaseRow } from '../core/cohort/summary.ts';
import type { ModelRequest } from '../core/cohort/study-run.ts';
import type { RegionKind } from '../core/metrics/regions.ts';
import { POSTPROCESS_DEFAULTS } from '../core/model/postprocess.ts';
import type { PostprocessOptions } from '../core/model/postprocess.ts';
import { TEST_TIME_AUGMENTATIONS, type TestTimeAugmentation } from '../core/model/run-settings.ts';

/** The flags of `segment` that say how each study is run (shared with `queue submit`). */
export const RUN_FLAGS = ['checkpoint', 'config', 'regions', 'channels', 'device', 'precision', 'batch', 'size', 'tta', 'dicom-seg', 'min-component-ml', 'min-et-ml'] as const;

/** --min-component-ml / --min-et-ml: volumes in ml ≥ 0 (0 switches the step off). */
export function postprocessOptions(args: ParsedArgs): PostprocessOptions {
  return {
    minComponentMl: rangedOption(args, 'min-component-ml', { min: 0 }, POSTPROCESS_DEFAULTS.minComponentMl),
    minEtMl: rangedOption(args, 'min-et-ml', { min: 0 }, POSTPROCESS_DEFAULTS.minEtMl),
  };
}

/** --size: "352" or "352x320" (H×W). */
export function parseSize(value: string | undefined): [number, number] | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(value.trim());
  if (!m) throw new UserError(`--size expects N or HxW (e.g. 352 or 352x320), got "${value}"`);
  const h = Number(m[1]);
  return [h, m[2] ? Number(m[2]) : h];
}

/** --tta: none or mirror (run-settings.ts TEST_TIME_AUGMENTATIONS). */
export function parseTta(value: string | undefined): TestTimeAugmentation | undefined {
  if (value === undefined) return undefined;
  if (!TEST_TIME_AUGMENTATIONS.includes(value as TestTimeAugmentation)) throw new UserError(`--tta expects ${TEST_TIME_AUGMENTATIONS.join(' or ')}, got "${value}"`);
  return value as TestTimeAugmentation;
}

export function parseRegions(value: string | undefined): RegionKind | undefined {
  if (value === undefined) return undefined;
  if (value !== 'brats' && value !== 'binary') throw new UserError(`--regions expects brats or binary, got "${value}"`);
  return value;
}

/** Reads RUN_FLAGS: how every study is run. */
export async function runFlags(args: ParsedArgs): Promise<Omit<CohortCommandOptions, 'json'>> {
  const [{ hieraConfigOption }, { parseDevice }, { checkInputSize }, { parsePrecision }] = await Promise.all([
    import('./config-option.ts'),
    import('../core/onnx/session.ts'),
    import('../core/model/run-settings.ts'),
    import('../core/onnx/quantize.ts'),
  ]);
  const regions = parseRegions(stringOption(args, 'regions'));
  const size = parseSize(stringOption(args, 'size'));
  const tta = parseTta(stringOption(args, 'tta'));
  const batch = rangedOption(args, 'batch', { integer: true, min: 1, max: 64 });
  const channels = listOption(args, 'channels');
  const postprocess = postprocessOptions(args);
  const device = parseDevice(stringOption(args, 'device'));
  const config = hieraConfigOption(stringOption(args, 'config'));
  if (size) checkInputSize(size);
  return {
    model: { checkpoint: stringOption(args, 'checkpoint'), size, regions, ...(tta ? { tta } : {}), config, device, precision: parsePrecision(stringOption(args, 'precision')) },
    channels,
    batch,
    postprocess,
    // --store (pacs:// studies) sends the SEG back, so it writes one
    dicomSeg: args.values['dicom-seg'] === true || args.values.store === true,
  };
}

/** Exit status of a cohort in which some studies failed (the others are done): not an error of the command. */
export const EXIT_SOME_FAILED = 3;

export interface CohortCommandOptions {
  model: ModelRequest;
  channels?: string[];
  batch?: number;
  postprocess: PostprocessOptions;
  dicomSeg: boolean;
  json: boolean;
}

/** "WT 0.948 TC 0.854 ET 0.860" or the volumes without ground truth. */
export function rowFigures(row: CaseRow): string {
  if (row.metrics) return row.regions.map((r) => `${r} ${row.metrics![r]?.dice?.toFixed(3) ?? '–'}`).join(' ');
  if (row.volumes_ml) return row.regions.map((r) => `${r} ${row.volumes_ml![r]?.toFixed(1) ?? '–'} ml`).join(' ');
  return '';
}

export function rowLine(row: CaseRow): string {
  switch (row.status) {
    case 'done':
      return `done     ${row.case}: ${rowFigures(row)} (${row.seconds?.toFixed(1)} s)`;
    case 'skipped':
      return `skipped  ${row.case}: up to date (${rowFigures(row)})`;
    case 'failed':
      return `FAILED   ${row.case}: ${row.error}`;
    case 'pending':
      return `pending  ${row.case}: not run`;
  }
}

export async function runCohortCommand(cohort: Cohort, out: string, args: ParsedArgs, io: CommandIO, opts: CohortCommandOptions): Promise<number> {
  if (stringOption(args, 'gt')) throw new UserError('--gt names the ground truth of one study; in a cohort each study brings its own (a BraTS case\'s _seg file)');
  const [{ CaseRunner }, { runCohort }, { createProgress }, { BUNDLED_MODEL_NAME }, { resolve }] = await Promise.all([
    import('../core/cohort/case-run.ts'),
    import('../core/cohort/runner.ts'),
    import('./progress.ts'),
    import('../core/jobs/bundled.ts'),
    import('node:path'),
  ]);
  const outDir = resolve(out);
  if (outDir === cohort.folder || outDir.startsWith(`${cohort.folder}/`)) {
    // the outputs would become studies of the cohort on the next run, and studies are never written into
    throw new UserError(`--out ${out} is inside the cohort ${cohort.folder}; write the outputs elsewhere`);
  }
  for (const note of cohort.notes) io.stderr(`note: ${note}\n`);
  const settings: CohortRunSettings = { model: opts.model, channels: opts.channels, batch: opts.batch, postprocess: opts.postprocess, dicomSeg: opts.dicomSeg };
  const note = (text: string) => {
    progress?.clear();
    io.stderr(`note: ${text}\n`);
  };
  let progress: ReturnType<typeof createProgress> | undefined;
  const runner = await CaseRunner.create(settings, {
    onNote: note,
    onModelLoading: (choice) => io.stderr(`loading ${choice.bundled ? `the ${BUNDLED_MODEL_NAME} (${choice.checkpoint})` : choice.checkpoint} …\n`),
    onModelReady: (model) => io.stderr(`model ready in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' (cached graph)' : ''} on ${model.provider.toUpperCase()}\n`),
  });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  let toRun = 0;
  let running = new Set<string>();
  let finishedToRun = 0;
  const started = performance.now();
  try {
    const result = await runCohort(cohort, outDir, {
      runner,
      force: args.values.force === true,
      signal: controller.signal,
      events: {
        plan: (plan) => {
          toRun = plan.toRun.length;
          running = new Set(plan.toRun.map((c) => c.name));
          const parts = [`${plan.cases} studies in ${cohort.folder}`, `${plan.upToDate} up to date`, `${toRun} to segment`];
          if (plan.failed) parts.push(`${plan.failed} unreadable`);
          io.stderr(`cohort: ${parts.join(', ')}\n`);
        },
        caseStart: (entry, index) => {
          progress ??= createProgress(io, 'cohort', toRun, { unit: 'studies' });
          progress.update(index, entry.name);
        },
        slice: (entry, done, total) => {
          progress?.update(finishedToRun + done / Math.max(1, total), `${entry.name} ${done}/${total} slices`);
        },
        caseEnd: (row) => {
          if (running.has(row.case)) finishedToRun++;
          if (opts.json) io.stdout(`${JSON.stringify({ type: 'case', ...row })}\n`);
          else {
            progress?.clear();
            io.stdout(`${rowLine(row)}\n`);
          }
          progress?.update(finishedToRun);
        },
      },
    });
    progress?.finish(`cohort: ${toRun} studies run in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const { counts } = result.summary;
    const files = [result.files.csv, result.files.json, result.files.html, result.files.pdf];
    if (opts.json) io.stdout(`${JSON.stringify({ type: 'summary', counts, cancelled: result.cancelled, files })}\n`);
    else {
      io.stdout(`${counts.done} segmented, ${counts.skipped} up to date, ${counts.failed} failed${counts.pending ? `, ${counts.pending} not run` : ''}\n`);
      for (const file of files) io.stdout(`wrote ${file}\n`);
    }
    if (result.cancelled) {
      io.stderr(`cancelled: ${counts.pending} studies not run; run the same command again to resume\n`);
      return 130;
    }
    return counts.failed ? EXIT_SOME_FAILED : 0;
  } finally {
    process.off('SIGINT', onSigint);
    await runner.dispose();
  }
}
