/**
 * One study through the model into an output folder: what `sam2unet segment <study>` does, and
 * what a cohort (one machine, a queue worker, the app's "Segment all") does for each of its
 * studies, so every front end writes the same files. Split in the steps a cohort needs apart:
 * choosing the model (once), preparing a study (refused before the model is loaded when it
 * lacks a sequence), running it with a loaded model and writing its outputs.
 */
import { existsSync } from 'node:fs';
import { FileError, UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import type { Volume } from '../io/volume.ts';
import type { RegionKind } from '../metrics/regions.ts';
import type { HieraConfig } from '../model/config.ts';
import type { PostprocessOptions } from '../model/postprocess.ts';
import type { ChannelMapping, RunSettings, StoredRunSettings, TestTimeAugmentation } from '../model/run-settings.ts';
import type { Device } from '../onnx/session.ts';
import type { Precision } from '../onnx/quantize.ts';
import type { BundledModel } from '../jobs/bundled.ts';
import type { CheckpointModel } from '../jobs/model.ts';
import type { SegmentEvents, SegmentSummary } from '../jobs/segment.ts';
import type { MetricsReport } from '../report/index.ts';

export interface ModelRequest {
  /** a SAM2-UNet checkpoint; default the bundled model */
  checkpoint?: string;
  /** model input [H, W]; default what the checkpoint says */
  size?: [number, number];
  regions?: RegionKind;
  /** test-time augmentation; default what the checkpoint says */
  tta?: TestTimeAugmentation;
  config?: HieraConfig;
  device?: Device;
  /** the inference graph's arithmetic (default float32) */
  precision?: Precision;
}

/** The model a run will use, with the settings it runs with, known before it is loaded. */
export interface ModelChoice {
  checkpoint: string;
  /** the bundled model's record when the checkpoint is the bundled file */
  bundled: BundledModel | null;
  /** the user's overrides (size, regions, test-time augmentation) */
  user: StoredRunSettings;
  /** size, channels, regions and test-time augmentation as the loaded model will have them */
  expected: RunSettings;
  config?: HieraConfig;
  device?: Device;
  /** the inference graph's arithmetic (default float32) */
  precision?: Precision;
  /** what the model list and reports call it */
  name: string;
}

export async function chooseModel(request: ModelRequest): Promise<ModelChoice> {
  const [{ bundledModel, bundledFor, modelName }, { readStoredRunSettings }, { resolveRunSettings }] = await Promise.all([
    import('../jobs/bundled.ts'),
    import('../model/checkpoint.ts'),
    import('../model/run-settings.ts'),
  ]);
  const checkpoint = request.checkpoint ?? (await bundledModel()).checkpoint;
  if (!existsSync(checkpoint)) throw new FileError(checkpoint, 'no such file');
  // size, regions and tta override what the checkpoint says; channels are what each study feeds
  // to the channels the checkpoint names (a substitution when they differ)
  const user: StoredRunSettings = {
    ...(request.size ? { size: request.size } : {}),
    ...(request.regions ? { regions: request.regions } : {}),
    ...(request.tta ? { tta: request.tta } : {}),
  };
  const [stored, bundled] = await Promise.all([readStoredRunSettings(checkpoint), bundledFor(checkpoint)]);
  const expected = resolveRunSettings({ user, checkpoint: stored, bundled: bundled?.run });
  return { checkpoint, bundled, user, expected, config: request.config, device: request.device, ...(request.precision ? { precision: request.precision } : {}), name: modelName(checkpoint, bundled !== null) };
}

export async function loadModel(choice: ModelChoice, onMessage?: (message: string) => void): Promise<CheckpointModel> {
  const { sliceModelFromCheckpoint } = await import('../jobs/model.ts');
  return sliceModelFromCheckpoint(choice.checkpoint, { config: choice.config, user: choice.user, device: choice.device, ...(choice.precision ? { precision: choice.precision } : {}), ...(onMessage ? { onMessage } : {}) });
}

export interface PrepareOptions {
  /** the study's sequences for the model's channels (one name feeds all); see run-settings.ts mapChannels */
  channels?: string[];
  /** a ground-truth label map instead of the study's own seg */
  groundTruth?: string;
  /** the caller will write a DICOM SEG: only a DICOM study can have one */
  dicomSeg?: boolean;
  /** how a missing sequence can be substituted, in the front end's words; default the CLI's --channels hint */
  substituteHint?: (mapping: ChannelMapping, sequences: string[]) => string;
  onNote?: (note: string) => void;
}

/** A study opened and checked against the model's channels, ready to run. */
export interface PreparedStudy {
  path: string;
  study: Study;
  mapping: ChannelMapping;
  /** the study's sequences, in model channel order */
  channelNames: string[];
  /** the first input channel: the grid of the labels, the picture in the report */
  reference: Volume;
  groundTruth: Volume | null;
}

/** Opens a path that must hold exactly one study. */
export async function openOneStudy(path: string, onNote?: (note: string) => void): Promise<Study> {
  const { openPath } = await import('../io/open.ts');
  const { studies, notes } = await openPath(path);
  for (const note of notes) onNote?.(note);
  if (studies.length > 1) {
    throw new UserError(`${path} holds ${studies.length} studies (${studies.map((s) => s.name).join(', ')}); point at one of them`);
  }
  return studies[0]!;
}

/** A label map on the study's grid (a NIfTI file, or the seg of a BraTS folder). */
async function openGroundTruth(path: string, reference: Volume, onNote?: (note: string) => void): Promise<Volume> {
  const { sameGrid } = await import('../io/volume.ts');
  const study = await openOneStudy(path, onNote);
  const volumes = study.seg ? [study.seg] : Object.values(study.sequences);
  if (volumes.length !== 1) throw new FileError(path, `holds ${volumes.length} volumes; --gt needs one label map`);
  const gt = volumes[0]!;
  if (!sameGrid(gt.geometry, reference.geometry)) {
    throw new FileError(path, `the ground truth (${gt.dims.join('×')}) is not on the study's grid (${reference.dims.join('×')}, same origin, spacing and direction needed)`);
  }
  return gt;
}

export async function prepareStudy(path: string, expected: RunSettings, opts: PrepareOptions = {}): Promise<PreparedStudy> {
  const [runSettings, { inputChannels }] = await Promise.all([import('../model/run-settings.ts'), import('../model/preprocess.ts')]);
  const study = await openOneStudy(path, opts.onNote);
  if (opts.dicomSeg && study.kind !== 'dicom') {
    throw new UserError(`--dicom-seg needs a DICOM study; ${path} is ${study.kind === 'brats' ? 'a BraTS (NIfTI) case' : 'a NIfTI file'}`);
  }
  const sequenceNames = Object.keys(study.sequences);
  const mapping = runSettings.mapChannels(study.name, sequenceNames, expected.channels, opts.channels);
  const hint = (opts.substituteHint ?? runSettings.channelsFlagHint)(mapping, sequenceNames);
  const channelNames = runSettings.requireChannels(study.name, sequenceNames, mapping, hint);
  const reference = inputChannels(study, channelNames)[0];
  const groundTruth = opts.groundTruth ? await openGroundTruth(opts.groundTruth, reference, opts.onNote) : (study.seg ?? null);
  return { path, study, mapping, channelNames, reference, groundTruth };
}

export interface RunOptions {
  /** largest batch of slices per model run; default the provider's */
  batch?: number;
  postprocess: PostprocessOptions;
  /** also write <case>_pred_seg.dcm (DICOM studies) */
  dicomSeg?: boolean;
  signal?: AbortSignal;
}

export interface StudyOutcome {
  labels: Volume;
  summary: SegmentSummary;
  report: MetricsReport;
  /** every file written, the label map first */
  files: string[];
  /** substitutions and assumed defaults (run-settings.ts runNotes), as the report states them */
  notes: string[];
}

/** Segments a prepared study with a loaded model and writes its outputs into `outDir`. */
export async function runStudy(prepared: PreparedStudy, model: CheckpointModel, outDir: string, opts: RunOptions, events: SegmentEvents = {}): Promise<StudyOutcome> {
  const [{ segmentStudy }, runSettings] = await Promise.all([import('../jobs/segment.ts'), import('../model/run-settings.ts')]);
  const notes = runSettings.runNotes(model.settings, prepared.mapping);
  const { labels, summary } = await segmentStudy(
    prepared.study,
    model,
    // the report builder computes the whole-volume metrics (HD95 is the costly part): once
    {
      channels: prepared.channelNames,
      regions: model.settings.regions,
      batchSize: opts.batch,
      groundTruth: prepared.groundTruth,
      signal: opts.signal,
      volumeMetrics: false,
      postprocess: opts.postprocess,
    },
    events,
  );
  // the same writers as the app's exports (core/export): the outputs cannot drift apart
  const [{ writeSegmentationOutputs }, { predictionRun }] = await Promise.all([import('../export/index.ts'), import('../jobs/prediction-run.ts')]);
  const { files, report } = await writeSegmentationOutputs(
    outDir,
    { study: prepared.study, labels, source: 'prediction', run: predictionRun(model, prepared.mapping, summary), groundTruth: prepared.groundTruth, perSlice: prepared.groundTruth ? summary.perSlice : undefined },
    { dicomSeg: opts.dicomSeg === true },
  );
  return { labels, summary, report, files, notes };
}
