import { defineCommand, requireOption, stringOption } from '../command.ts';
import { UserError } from '../../core/errors.ts';
import type { SegmentSummary, SliceResult } from '../../core/jobs/segment.ts';
import type { RegionResults } from '../../core/metrics/evaluate.ts';
import { POSTPROCESS_DEFAULTS } from '../../core/model/postprocess.ts';
import { PACS_CACHE_OPTIONS, PACS_URL_OPTION } from '../pacs-hook.ts';

const round = (v: number | null | undefined, digits = 4): number | null => (v === null || v === undefined || !Number.isFinite(v) ? null : +v.toFixed(digits));

function sliceJson(r: SliceResult): string {
  const regions = r.regions ? Object.fromEntries(Object.entries(r.regions).map(([name, m]) => [name, { dice: round(m.dice), iou: round(m.iou) }])) : null;
  return JSON.stringify({ type: 'slice', index: r.index, empty: r.empty === true, ms: round(r.ms, 1), regions });
}

export default defineCommand({
  name: 'segment',
  summary: 'segment a study (BraTS folder, NIfTI or DICOM series) slice by slice with SAM2-UNet',
  usage: 'segment <study> --out <dir> [--checkpoint <file>] [--gt <seg>] [options]',
  options: {
    out: { type: 'string', valueName: 'dir', description: 'output folder (created if needed)' },
    checkpoint: { type: 'string', valueName: 'file', description: 'SAM2-UNet checkpoint (.pth or .safetensors); default: the bundled model' },
    config: { type: 'string', valueName: 'preset|JSON', description: 'Hiera trunk: a preset (hiera_t, hiera_s, hiera_b+, hiera_l), JSON or a JSON file; default: detected' },
    gt: { type: 'string', valueName: 'seg', description: 'ground-truth label map (default: the seg of a BraTS study)' },
    regions: { type: 'string', valueName: 'brats|binary', description: 'how to read the model output (default: what the checkpoint says, else 3 channels brats, 1 binary)' },
    channels: { type: 'string', valueName: 'a,b,c', description: "the study's sequences fed to the model's three channels, in order (default: the sequences the checkpoint names, else flair,t1ce,t2; one name feeds all three). A study lacking one of them is refused unless this says what to feed instead; the substitution is written into the report" },
    device: { type: 'string', valueName: 'auto|cpu|cuda|dml|coreml|webgpu', description: 'execution provider (default auto)' },
    batch: { type: 'string', valueName: 'N', description: 'largest batch of slices per model run (default 1 on CPU, 4 otherwise)' },
    precision: { type: 'string', valueName: 'float32|int8|float16', description: 'the inference graph\'s arithmetic: float32 (default), int8 (CPU integer kernels: per-channel int8 weights, activations quantized per run) or float16 (GPU providers)' },
    size: { type: 'string', valueName: 'N|HxW', description: 'model input size, multiples of 32 (default: what the checkpoint says, else 352)' },
    tta: { type: 'string', valueName: 'none|mirror', description: "test-time augmentation: mirror runs each slice four times (as is, flipped left-right, front-back, both) and averages the logits, at four times the model time (default: what the checkpoint says, else none)" },
    'dicom-seg': { type: 'boolean', description: 'also write <case>_pred_seg.dcm (DICOM studies only)' },
    'min-component-ml': { type: 'string', valueName: 'ml', description: `3D post-processing: remove whole-tumour components (26-connected) smaller than this (default ${POSTPROCESS_DEFAULTS.minComponentMl}; 0 keeps all)` },
    'min-et-ml': { type: 'string', valueName: 'ml', description: `3D post-processing: enhancing tumour smaller than this in total becomes necrosis, label 1 (default ${POSTPROCESS_DEFAULTS.minEtMl}; 0 never)` },
    json: { type: 'boolean', description: 'one JSON line per slice on stdout, then a summary line' },
    force: { type: 'boolean', description: 'cohort: segment every study again, also those whose outputs are up to date' },
    ...PACS_URL_OPTION,
    store: { type: 'boolean', description: 'pacs:// studies: store the DICOM SEG and the PDF report (Encapsulated PDF) in the source study (implies --dicom-seg)' },
    ...PACS_CACHE_OPTIONS,
  },
  details:
    'Writes <out>/<case>_pred.nii.gz (labels 0/1/2/4 for BraTS regions, 0/1 for a binary model),\n' +
    'metrics.json, metrics.csv, report.html and report.pdf, and with --dicom-seg <out>/<case>_pred_seg.dcm.\n' +
    'JSON lines: {"type":"slice","index","empty","ms","regions":{"WT":{"dice","iou"},…}|null} per slice in\n' +
    'order, then {"type":"summary",…}. Progress goes to stderr. Ctrl-C cancels (exit 130).\n' +
    '\n' +
    'A folder whose sub-folders are studies (BraTS case folders, DICOM study folders) is a cohort:\n' +
    'each study is written to <out>/<case>/ as above (plus cohort-case.json: hashes and figures), and\n' +
    '<out>/cohort.csv, cohort.json, cohort.html and cohort.pdf summarise them. A study that fails is\n' +
    'recorded and the others go on (exit status 3 when some failed). Run the same command again to\n' +
    'resume: studies whose outputs are complete and whose files, model and settings are unchanged are\n' +
    'skipped. --json gives one {"type":"case",…} line per study, then {"type":"summary",…}.\n' +
    '\n' +
    'A study given as pacs://<StudyInstanceUID> is fetched from --pacs first (see `sam2unet pacs --help`).',
  async run(args, io) {
    if (args.positionals.length !== 1) throw new UserError('segment takes exactly one study path (see --help)');
    // pacs://<StudyInstanceUID>: fetched into the instance cache, then opened as that folder
    const { path: studyPath, pacs } = await (await import('../pacs-hook.ts')).resolvePacsStudy(args.positionals[0]!, args, io);
    const outDir = requireOption(args, 'out');
    const json = args.values.json === true;
    const { runFlags } = await import('../cohort.ts');
    const flags = await runFlags(args);
    const { channels, batch, postprocess, dicomSeg: wantDicomSeg, model: modelRequest } = flags;
    const [{ BUNDLED_MODEL_NAME }, studyRun, runSettings] = await Promise.all([
      import('../../core/jobs/bundled.ts'),
      import('../../core/cohort/study-run.ts'),
      import('../../core/model/run-settings.ts'),
    ]);
    // a folder whose sub-folders are studies is a cohort (core/cohort)
    const { findCohort } = await import('../../core/cohort/find.ts');
    const cohort = await findCohort(studyPath);
    if (cohort) {
      const { runCohortCommand } = await import('../cohort.ts');
      return runCohortCommand(cohort, outDir, args, io, { ...flags, json });
    }
    const choice = await studyRun.chooseModel(modelRequest);
    const note = (text: string) => io.stderr(`note: ${text}\n`);
    const prepared = await studyRun.prepareStudy(studyPath, choice.expected, { channels, groundTruth: stringOption(args, 'gt'), dicomSeg: wantDicomSeg, onNote: note });
    const { checkpoint, bundled } = choice;

    io.stderr(`loading ${bundled ? `the ${BUNDLED_MODEL_NAME} (${checkpoint})` : checkpoint} …\n`);
    const model = await studyRun.loadModel(choice, note);
    const [sizeWords, , regionWords, ttaWords] = runSettings.describeRunSettings(model.settings);
    io.stderr(`${sizeWords}; ${regionWords}; channels ${runSettings.describeMapping(prepared.mapping)} (${runSettings.sourceWords(model.settings.from.channels)}); ${ttaWords}\n`);
    for (const text of runSettings.runNotes(model.settings, prepared.mapping)) note(text);
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
      io.stderr(`model ready in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' (cached graph)' : ''} on ${model.provider.toUpperCase()}, ${model.precision}\n`);
      const { createProgress } = await import('../progress.ts');
      let progress: ReturnType<typeof createProgress> | undefined;
      let done = 0;
      const run = studyRun.runStudy(prepared, model, outDir, { batch, postprocess, dicomSeg: wantDicomSeg, signal: controller.signal }, {
        start: (info) => {
          progress = createProgress(io, `segmenting ${prepared.study.name}`, info.slices, { unit: 'slices' });
        },
        slice: (r) => {
          done++;
          if (json) io.stdout(`${sliceJson(r)}\n`);
          progress?.update(done);
        },
      });
      // a failed or cancelled job leaves no half-drawn bar before the error line
      const { summary, files, report } = await run.catch((err: unknown) => {
        progress?.clear();
        throw err;
      });
      progress?.finish(`segmented ${summary.slices} slices (${summary.emptySlices} empty) in ${(summary.ms / 1000).toFixed(1)} s on ${summary.provider.toUpperCase()}`);
      if (pacs) await (await import('../pacs-hook.ts')).storeSegmentOutputs(args, io, pacs, files, prepared.reference);
      if (json) io.stdout(`${JSON.stringify({ type: 'summary', ...summaryJson(summary, report.perVolume), files })}\n`);
      else io.stdout(humanSummary(summary, report.perVolume, files));
      return 0;
    } finally {
      process.off('SIGINT', onSigint);
      await model.dispose();
    }
  },
});

function summaryJson(summary: SegmentSummary, perVolume: RegionResults | undefined): Record<string, unknown> {
  const metrics = perVolume
    ? Object.fromEntries(
        Object.entries(perVolume).map(([name, m]) => [
          name,
          { dice: round(m.dice), iou: round(m.iou), sensitivity: round(m.sensitivity), specificity: round(m.specificity), hd95: round(m.hd95, 3), volumeMl: round(m.volumeMl, 3), gtVolumeMl: round(m.gtVolumeMl, 3) },
        ]),
      )
    : null;
  return {
    case: summary.case,
    slices: summary.slices,
    emptySlices: summary.emptySlices,
    provider: summary.provider,
    regions: summary.regions,
    seconds: round(summary.ms / 1000, 2),
    msPerSlice: round(summary.msPerSlice, 1),
    postprocessing: summary.postprocessing,
    metrics,
  };
}

function humanSummary(summary: SegmentSummary, perVolume: RegionResults | undefined, files: string[]): string {
  const lines: string[] = [];
  if (perVolume) {
    const width = Math.max(6, ...Object.keys(perVolume).map((n) => n.length));
    lines.push(`${'region'.padEnd(width)}  Dice    IoU     HD95 mm  volume ml (gt)`);
    for (const [name, m] of Object.entries(perVolume)) {
      lines.push(`${name.padEnd(width)}  ${m.dice.toFixed(4)}  ${m.iou.toFixed(4)}  ${m.hd95.toFixed(2).padStart(7)}  ${m.volumeMl.toFixed(2)} (${m.gtVolumeMl.toFixed(2)})`);
    }
  } else {
    lines.push('no ground truth: no metrics');
  }
  lines.push(`${(summary.msPerSlice / 1000).toFixed(2)} s per slice, ${(summary.ms / 1000).toFixed(1)} s in all`);
  for (const f of files) lines.push(`wrote ${f}`);
  return `${lines.join('\n')}\n`;
}
