/**
 * The one export path (architecture.md, "Exports"): label maps as NIfTI and DICOM SEG, and the
 * report (HTML, PDF, CSV, JSON), written the same way for the app, the browser mode and the CLI —
 * the service's exporters and `sam2unet segment` call these functions, so their outputs cannot
 * drift (test/unit/app/export-parity.test.ts compares them).
 */
import { join } from 'node:path';
import pkg from '../../../package.json' with { type: 'json' };
import type { ExportFormat, MaskSource, TumourDescription } from '../api.ts';
import { maskFileName, type LabelColours } from '../conventions.ts';
import { UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import { labelBytes, type Volume } from '../io/volume.ts';
import type { PredictionRun } from '../jobs/kinds.ts';
import { detectRegionKind, labelsPresent, type RegionKind } from '../metrics/regions.ts';
import type { MetricsReport, SliceEntry } from '../report/types.ts';

export interface ExportInput {
  study: Study;
  /** the label map on the study grid, with the study's geometry */
  labels: Volume;
  source: MaskSource;
  /** how the prediction was made (absent for ground truth) */
  run?: PredictionRun;
  /** the app's label colours: the report draws regions as the app shows them (default conventions.ts's) */
  labelColours?: LabelColours;
  /** the labels' tumour description when made already (in the io worker): the report's tumour section then shows what the app's panel shows */
  tumour?: TumourDescription;
  /** ground truth other than the study's own (the CLI's --gt); default the study's */
  groundTruth?: Volume | null;
  /** per-slice metrics already computed while segmenting (otherwise the report computes them) */
  perSlice?: SliceEntry[];
}

/** A file-system-safe case name: the study's name with anything unusual replaced. */
export function caseFileStem(studyName: string): string {
  const stem = studyName.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+|_+$/g, '');
  return stem || 'study';
}

/**
 * The file name an export of `format` gets: a prediction is `<case>_pred.nii.gz` /
 * `<case>_pred_seg.dcm`, ground truth `<case>_seg…` (conventions.ts maskFileName), a report the
 * folder `<case>_report`.
 */
export function suggestedExportName(studyName: string, format: ExportFormat, source: MaskSource = 'prediction'): string {
  const stem = caseFileStem(studyName);
  return format === 'report' ? `${stem}_report` : maskFileName(stem, format, source);
}

function regionKindOf(input: ExportInput): RegionKind {
  return input.run?.regions ?? detectRegionKind(labelsPresent(input.labels.data as Uint8Array));
}

const describeLabels = (input: ExportInput, kind: RegionKind) =>
  `${input.source === 'prediction' ? 'SAM2-UNet' : 'ground truth'} ${kind === 'brats' ? 'BraTS labels' : 'tumour'}`;

export async function writeMaskNifti(target: string, input: ExportInput): Promise<string[]> {
  const { writeNifti } = await import('../io/nifti.ts');
  await writeNifti(target, input.labels, { dtype: 'uint8', description: describeLabels(input, regionKindOf(input)) });
  return [target];
}

/** The images a SEG refers to: a sequence read from DICOM (it carries the SOP Instance UIDs), else the first. */
function segReference(study: Study): Volume {
  return Object.values(study.sequences).find((v) => v.meta.sopInstanceUids?.length) ?? Object.values(study.sequences)[0]!;
}

export async function writeMaskDicomSeg(target: string, input: ExportInput): Promise<string[]> {
  const { writeDicomSeg, BRATS_SEGMENTS, BINARY_SEGMENTS } = await import('../io/dicom-seg.ts');
  const kind = regionKindOf(input);
  await writeDicomSeg(target, {
    labels: input.labels.data as Uint8Array,
    source: segReference(input.study),
    segments: kind === 'brats' ? BRATS_SEGMENTS : BINARY_SEGMENTS,
    algorithm: { name: input.source === 'prediction' ? 'SAM2-UNet' : 'ground truth', version: pkg.version },
    seriesDescription: describeLabels(input, kind),
  });
  return [target];
}

/** The picture behind report thumbnails: FLAIR when there is one (tumours show best), else the first. */
function reportImage(study: Study): Volume {
  return study.sequences.flair ?? Object.values(study.sequences)[0]!;
}

/** The report of a prediction, built once from what the run recorded. */
export async function buildPredictionReport(input: ExportInput): Promise<MetricsReport> {
  const { run } = input;
  if (input.source !== 'prediction' || !run) throw new UserError('a report describes a segmentation run: export the prediction, not the ground truth');
  const [{ buildReport }, { postprocessingSteps }, { describeTta }] = await Promise.all([import('../report/index.ts'), import('../model/postprocess.ts'), import('../model/run-settings.ts')]);
  const truth = input.groundTruth === undefined ? input.study.seg : input.groundTruth;
  return buildReport({
    study: input.study.name,
    settings: {
      model: run.model,
      checkpoint: run.checkpoint,
      preset: run.preset,
      device: run.device,
      inputSize: run.inputSize,
      ...(run.tta ? { testTimeAugmentation: describeTta(run.tta) } : {}),
      threshold: 0.5,
      notes: run.notes,
      ...(run.postprocessing ? { postprocessing: postprocessingSteps(run.postprocessing) } : {}),
      ...(input.labelColours ? { labelColours: input.labelColours } : {}),
      extra: { channels: run.channels, ...(run.precision && run.precision !== 'float32' ? { precision: run.precision } : {}), ...(run.slices ? { batches: run.slices.batches, emptySlices: run.slices.empty } : {}) },
    },
    regionKind: run.regions,
    image: reportImage(input.study),
    pred: input.labels.data as Uint8Array,
    ...(input.tumour ? { tumour: input.tumour } : {}),
    ...(truth ? { gt: labelBytes(truth) } : {}),
    ...(truth && input.perSlice ? { perSlice: input.perSlice } : {}),
    timings: { load: run.loadMs, inference: run.ms },
  });
}

/** report.html, report.pdf, metrics.csv, metrics.json under `dir`, in that order. */
export async function writeReport(dir: string, input: ExportInput, report?: MetricsReport): Promise<string[]> {
  const { writeReports } = await import('../report/index.ts');
  const files = await writeReports(dir, report ?? (await buildPredictionReport(input)));
  return [files.html, files.pdf, files.csv, files.json];
}

export interface SegmentationOutputs {
  files: string[];
  report: MetricsReport;
}

/**
 * What `sam2unet segment` writes into its output folder: `<case>_pred.nii.gz`, the report files,
 * and `<case>_pred_seg.dcm` when asked — each through the writers above.
 */
export async function writeSegmentationOutputs(outDir: string, input: ExportInput, opts: { dicomSeg: boolean }): Promise<SegmentationOutputs> {
  const stem = caseFileStem(input.study.name);
  const files = await writeMaskNifti(join(outDir, maskFileName(stem, 'nifti', input.source)), input);
  const report = await buildPredictionReport(input);
  files.push(...(await writeReport(outDir, input, report)));
  if (opts.dicomSeg) files.push(...(await writeMaskDicomSeg(join(outDir, maskFileName(stem, 'dicom-seg', input.source)), input)));
  return { files, report };
}
