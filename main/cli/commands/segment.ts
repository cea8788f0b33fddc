import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineCommand, listOption, numberOption, requireOption, stringOption, type CommandIO, type ParsedArgs } from '../command.ts';
import { hieraConfigOption } from '../config-option.ts';
import { FileError, UserError } from '../../core/errors.ts';
import { maskFileName } from '../../core/conventions.ts';
import type { Study } from '../../core/io/study.ts';
import type { Volume } from '../../core/io/volume.ts';
import type { RegionKind } from '../../core/metrics/regions.ts';
import type { SegmentSummary, SliceResult } from '../../core/jobs/segment.ts';
import type { CheckpointModel } from '../../core/jobs/model.ts';
import type { RegionResults } from '../../core/metrics/evaluate.ts';
import type { MetricsReport } from '../../core/report/index.ts';
import { POSTPROCESS_DEFAULTS, type PostprocessOptions } from '../../core/model/postprocess.ts';

/** --min-component-ml / --min-et-ml: volumes in ml ≥ 0 (0 switches the step off). */
function postprocessOptions(args: ParsedArgs): PostprocessOptions {
  const read = (flag: string, fallback: number): number => {
    const value = numberOption(args, flag, fallback)!;
    if (!Number.isFinite(value) || value < 0) throw new UserError(`--${flag} expects a volume in ml ≥ 0 (0 switches it off), got ${value}`);
    return value;
  };
  return { minComponentMl: read('min-component-ml', POSTPROCESS_DEFAULTS.minComponentMl), minEtMl: read('min-et-ml', POSTPROCESS_DEFAULTS.minEtMl) };
}

/** A file-system-safe case name: the study's name with anything unusual replaced. */
export function caseFileStem(study: Study): string {
  const stem = study.name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+|_+$/g, '');
  return stem || 'study';
}

/** --size: "352" or "352x320" (H×W). */
export function parseSize(value: string | undefined): [number, number] | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(value.trim());
  if (!m) throw new UserError(`--size expects N or HxW (e.g. 352 or 352x320), got "${value}"`);
  const h = Number(m[1]);
  return [h, m[2] ? Number(m[2]) : h];
}

function parseRegions(value: string | undefined): RegionKind | undefined {
  if (value === undefined) return undefined;
  if (value !== 'brats' && value !== 'binary') throw new UserError(`--regions expects brats or binary, got "${value}"`);
  return value;
}

async function openOneStudy(path: string, io: CommandIO): Promise<Study> {
  const { openPath } = await import('../../core/io/open.ts');
  const { studies, notes } = await openPath(path);
  for (const note of notes) io.stderr(`note: ${note}\n`);
  if (studies.length > 1) {
    throw new UserError(`${path} holds ${studies.length} studies (${studies.map((s) => s.name).join(', ')}); point at one of them`);
  }
  return studies[0]!;
}

/** --gt: a label map on the study's grid (a NIfTI file, or the seg of a BraTS folder). */
async function openGroundTruth(path: string, reference: Volume, io: CommandIO): Promise<Volume> {
  const { sameGrid } = await import('../../core/io/volume.ts');
  const study = await openOneStudy(path, io);
  const volumes = study.seg ? [study.seg] : Object.values(study.sequences);
  if (volumes.length !== 1) throw new FileError(path, `holds ${volumes.length} volumes; --gt needs one label map`);
  const gt = volumes[0]!;
  if (!sameGrid(gt.geometry, reference.geometry)) {
    throw new FileError(path, `the ground truth (${gt.dims.join('×')}) is not on the study's grid (${reference.dims.join('×')}, same origin, spacing and direction needed)`);
  }
  return gt;
}

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
    'dicom-seg': { type: 'boolean', description: 'also write <case>_pred_seg.dcm (DICOM studies only)' },
    'min-component-ml': { type: 'string', valueName: 'ml', description: `3D post-processing: remove whole-tumour components (26-connected) smaller than this (default ${POSTPROCESS_DEFAULTS.minComponentMl}; 0 keeps all)` },
    'min-et-ml': { type: 'string', valueName: 'ml', description: `3D post-processing: enhancing tumour smaller than this in total becomes necrosis, label 1 (default ${POSTPROCESS_DEFAULTS.minEtMl}; 0 never)` },
    json: { type: 'boolean', description: 'one JSON line per slice on stdout, then a summary line' },
  },
  details:
    'Writes <out>/<case>_pred.nii.gz (labels 0/1/2/4 for BraTS regions, 0/1 for a binary model),\n' +
    'metrics.json, metrics.csv, report.html and report.pdf, and with --dicom-seg <out>/<case>_pred_seg.dcm.\n' +
    'JSON lines: {"type":"slice","index","empty","ms","regions":{"WT":{"dice","iou"},…}|null} per slice in\n' +
    'order, then {"type":"summary",…}. Progress goes to stderr. Ctrl-C cancels (exit 130).',
  async run(args, io) {
    if (args.positionals.length !== 1) throw new UserError('segment takes exactly one study path (see --help)');
    const studyPath = args.positionals[0]!;
    const outDir = requireOption(args, 'out');
    const json = args.values.json === true;
    const wantDicomSeg = args.values['dicom-seg'] === true;
    const regionsOpt = parseRegions(stringOption(args, 'regions'));
    const size = parseSize(stringOption(args, 'size'));
    const batch = numberOption(args, 'batch');
    if (batch !== undefined && (!Number.isInteger(batch) || batch < 1 || batch > 64)) throw new UserError(`--batch expects an integer 1…64, got ${batch}`);
    const channels = listOption(args, 'channels');
    const postprocess = postprocessOptions(args);
    const [{ parseDevice }, { parsePrecision }] = await Promise.all([import('../../core/onnx/session.ts'), import('../../core/onnx/quantize.ts')]);
    const device = parseDevice(stringOption(args, 'device'));
    const precision = parsePrecision(stringOption(args, 'precision'));
    const config = hieraConfigOption(stringOption(args, 'config'));
    const [{ bundledModel, bundledFor, checkInputSize, modelName, BUNDLED_MODEL_NAME }, { sliceModelFromCheckpoint }, { readStoredRunSettings }, runSettings] = await Promise.all([
      import('../../core/jobs/bundled.ts'),
      import('../../core/jobs/model.ts'),
      import('../../core/model/checkpoint.ts'),
      import('../../core/model/run-settings.ts'),
    ]);
    if (size) checkInputSize(size);

    const checkpoint = stringOption(args, 'checkpoint') ?? (await bundledModel()).checkpoint;
    if (!existsSync(checkpoint)) throw new FileError(checkpoint, 'no such file');
    // --size and --regions override what the checkpoint says; --channels is what the study feeds
    // to the channels the checkpoint names (a substitution when they differ)
    const user = { ...(size ? { size } : {}), ...(regionsOpt ? { regions: regionsOpt } : {}) };
    const [stored, bundled] = await Promise.all([readStoredRunSettings(checkpoint), bundledFor(checkpoint)]);
    const expected = runSettings.resolveRunSettings({ user, checkpoint: stored, bundled: bundled?.run });

    const study = await openOneStudy(studyPath, io);
    if (wantDicomSeg && study.kind !== 'dicom') {
      throw new UserError(`--dicom-seg needs a DICOM study; ${studyPath} is ${study.kind === 'brats' ? 'a BraTS (NIfTI) case' : 'a NIfTI file'}`);
    }
    const sequenceNames = Object.keys(study.sequences);
    const mapping = runSettings.mapChannels(study.name, sequenceNames, expected.channels, channels);
    const channelNames = runSettings.requireChannels(study.name, sequenceNames, mapping, runSettings.channelsFlagHint(mapping, sequenceNames));
    const { inputChannels } = await import('../../core/model/preprocess.ts');
    const channelVolumes = inputChannels(study, channelNames);
    const reference = channelVolumes[0];
    const gtPath = stringOption(args, 'gt');
    const groundTruth = gtPath ? await openGroundTruth(gtPath, reference, io) : (study.seg ?? null);

    io.stderr(`loading ${bundled ? `the ${BUNDLED_MODEL_NAME} (${checkpoint})` : checkpoint} …\n`);
    const model = await sliceModelFromCheckpoint(checkpoint, {
      config,
      user,
      device,
      precision,
      onMessage: (m) => io.stderr(`note: ${m}\n`),
    });
    const [sizeWords, , regionWords] = runSettings.describeRunSettings(model.settings);
    io.stderr(`${sizeWords}; ${regionWords}; channels ${runSettings.describeMapping(mapping)} (${runSettings.sourceWords(model.settings.from.channels)})\n`);
    const notes = runSettings.runNotes(model.settings, mapping);
    for (const note of notes) io.stderr(`note: ${note}\n`);
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
      io.stderr(`model ready in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' (cached graph)' : ''} on ${model.provider.toUpperCase()}, ${model.precision}\n`);
      const { createProgress } = await import('../progress.ts');
      const { segmentStudy } = await import('../../core/jobs/segment.ts');
      let progress: ReturnType<typeof createProgress> | undefined;
      let done = 0;
      const job = segmentStudy(
        study,
        model,
        // the report builder computes the whole-volume metrics (HD95 is the costly part): once
        { channels: channelNames, regions: model.settings.regions, batchSize: batch, groundTruth, signal: controller.signal, volumeMetrics: false, postprocess },
        {
          start: (info) => {
            progress = createProgress(io, `segmenting ${study.name}`, info.slices, { unit: 'slices' });
          },
          slice: (r) => {
            done++;
            if (json) io.stdout(`${sliceJson(r)}\n`);
            progress?.update(done);
          },
        },
      );
      // a failed or cancelled job leaves no half-drawn bar before the error line
      const { labels, summary } = await job.catch((err: unknown) => {
        progress?.clear();
        throw err;
      });
      progress?.finish(`segmented ${summary.slices} slices (${summary.emptySlices} empty) in ${(summary.ms / 1000).toFixed(1)} s on ${summary.provider.toUpperCase()}`);

      const { files, report } = await writeOutputs(outDir, study, labels, summary, {
        wantDicomSeg,
        checkpoint,
        model,
        image: reference,
        modelName: modelName(checkpoint, bundled !== null),
        channels: runSettings.describeMapping(mapping),
        notes,
        groundTruth,
      });
      if (json) io.stdout(`${JSON.stringify({ type: 'summary', ...summaryJson(summary, report.perVolume), files })}\n`);
      else io.stdout(humanSummary(summary, report.perVolume, files));
      return 0;
    } finally {
      process.off('SIGINT', onSigint);
      await model.dispose();
    }
  },
});

interface OutputOptions {
  wantDicomSeg: boolean;
  checkpoint: string;
  model: CheckpointModel;
  /** the first input channel: shown in the report's thumbnails */
  image: Volume;
  /** what the model list and the run panel call the model */
  modelName: string;
  /** model channel ← study sequence */
  channels: string;
  /** substitutions and defaults (run-settings.ts runNotes) */
  notes: string[];
  groundTruth: Volume | null;
}

/** <case>_pred.nii.gz, the four report files and, when asked, <case>_pred_seg.dcm (conventions.ts maskFileName). */
async function writeOutputs(outDir: string, study: Study, labels: Volume, summary: SegmentSummary, opts: OutputOptions): Promise<{ files: string[]; report: MetricsReport }> {
  const { writeNifti } = await import('../../core/io/nifti.ts');
  const { buildReport, writeReports } = await import('../../core/report/index.ts');
  const { presetName } = await import('../../core/model/config.ts');
  const { labelBytes } = await import('../../core/jobs/segment.ts');
  const { postprocessingSteps } = await import('../../core/model/postprocess.ts');
  const stem = caseFileStem(study);
  const pred = join(outDir, maskFileName(stem, 'nifti'));
  await writeNifti(pred, labels, { dtype: 'uint8', description: `SAM2-UNet ${summary.regions} labels` });
  const files = [pred];
  const [h, w] = opts.model.inputSize;
  const report = buildReport({
    study: study.name,
    settings: {
      model: opts.modelName,
      checkpoint: opts.checkpoint,
      preset: presetName(opts.model.config) ?? `custom (embed_dim ${opts.model.config.embed_dim})`,
      device: summary.provider,
      inputSize: h,
      threshold: 0.5,
      notes: opts.notes,
      postprocessing: postprocessingSteps(summary.postprocessing),
      extra: {
        ...(h !== w ? { inputWidth: w } : {}),
        channels: opts.channels,
        ...(opts.model.precision !== 'float32' ? { precision: opts.model.precision } : {}),
        batches: summary.batches.length,
        emptySlices: summary.emptySlices,
      },
    },
    regionKind: summary.regions,
    image: opts.image,
    pred: labels.data as Uint8Array,
    gt: opts.groundTruth ? labelBytes(opts.groundTruth) : undefined,
    perSlice: opts.groundTruth ? summary.perSlice : undefined,
    timings: { load: opts.model.loadMs, inference: summary.ms },
  });
  const written = await writeReports(outDir, report);
  files.push(written.json, written.csv, written.html, written.pdf);
  if (opts.wantDicomSeg) {
    const { writeDicomSeg, BRATS_SEGMENTS, BINARY_SEGMENTS } = await import('../../core/io/dicom-seg.ts');
    const { default: pkg } = await import('../../../package.json', { with: { type: 'json' } });
    const segFile = join(outDir, maskFileName(stem, 'dicom-seg'));
    await writeDicomSeg(segFile, {
      labels: labels.data as Uint8Array,
      // the labels are on this volume's grid; it carries the SOP Instance UIDs the SEG refers to
      source: opts.image,
      segments: summary.regions === 'brats' ? BRATS_SEGMENTS : BINARY_SEGMENTS,
      algorithm: { name: 'SAM2-UNet', version: (pkg as { version: string }).version },
      seriesDescription: `SAM2-UNet ${summary.regions === 'brats' ? 'BraTS labels' : 'tumour'}`,
    });
    files.push(segFile);
  }
  return { files, report };
}

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
