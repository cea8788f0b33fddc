/**
 * Ports from the api service to the other core services. Each is loaded lazily (so the web
 * server and the Electron window start fast) and reports itself unavailable, with the reason,
 * when its module is missing or fails to load — the UI shows that instead of faking results.
 */
import type { Availability, ExportFormat, MaskSource, RegionDice } from './api.ts';
import { UserError, errorMessage } from './errors.ts';
import type { LabelColours } from './conventions.ts';
import type { BratsSequence, Study } from './io/study.ts';
import type { Geometry, Volume } from './io/volume.ts';
import type { TumourDescription } from './metrics/describe.ts';
import type { JobHost } from './jobs/job-host.ts';
import type { BundledModel } from './jobs/bundled.ts';
import type { CheckpointSummary, TrainJobEvent } from './jobs/worker-jobs.ts';
import type { TrainOptions, TrainResult } from './train/trainer.ts';
import type { PostprocessOptions, PostprocessRecord } from './model/postprocess.ts';

export interface SegmentationRunOptions {
  checkpoint?: string;
  device?: string;
  /** the study's sequence for each model channel ('' = the model's own); see run-settings.ts mapChannels */
  channels?: string[];
  signal: AbortSignal;
  /** one axial slice's label map (0, 1, 2, 4), x fastest, with its Dice when there is ground truth */
  onSlice: (index: number, mask: Uint8Array, dice: RegionDice | null, ms: number) => void;
  onProgress: (message: string) => void;
  /** 3D post-processing thresholds; default POSTPROCESS_DEFAULTS */
  postprocess?: PostprocessOptions;
  /** the slice to do first, then outward (absent: index order) */
  focus?: number;
  /** the inference graph's arithmetic (default float32) */
  precision?: string;
  /** receives, once the job runs, the function that moves its focus (jobs/segment.ts SliceFocus) */
  onFocusControl?: (setFocus: (index: number) => void) => void;
}

/** What produced a prediction: recorded in reports. */
export interface PredictionRun {
  /** what the model list calls the model ("bundled default model", a file or run name) */
  model: string;
  checkpoint: string;
  preset: string;
  device: string;
  inputSize: number;
  regions: 'brats' | 'binary';
  /** model channel ← study sequence, e.g. "flair ← flair, t1ce ← flair (substitute), t2 ← flair (substitute)" */
  channels: string;
  /** substitutions and assumed defaults, for the report (run-settings.ts runNotes) */
  notes: string[];
  loadMs: number;
  ms: number;
  /** what 3D post-processing did to the prediction (absent: none, e.g. an imported mask) */
  postprocessing?: PostprocessRecord;
  /** the inference graph's arithmetic (absent: float32) */
  precision?: string;
}

export interface SegmentationOutcome {
  device: string;
  /** whole-volume Dice when there is ground truth */
  dice: RegionDice | null;
  run: PredictionRun;
  /** the slices 3D post-processing changed, as they are now (the streamed ones were raw) */
  revisedSlices?: { index: number; mask: Uint8Array; dice: RegionDice | null }[];
}

export interface SegmentationPort {
  availability: Availability;
  devices: string[];
  run?: (study: Study, options: SegmentationRunOptions) => Promise<SegmentationOutcome>;
  /** loads a model (default the bundled one) ahead of a run, so that the first run starts at once */
  prepare?: (choice: { checkpoint?: string; device?: string; precision?: string }) => Promise<void>;
}

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
}

export interface ExporterPort {
  availability: Availability;
  /** writes to `target` (and beside it if the format has several files); returns the files written */
  write?: (target: string, input: ExportInput) => Promise<string[]>;
}

export interface TrainingPort {
  availability: Availability;
  run?: (options: TrainOptions, onEvent: (event: TrainJobEvent) => void, signal: AbortSignal) => Promise<TrainResult>;
}

export interface Ports {
  openPath(path: string): Promise<{ studies: Study[]; notes: string[] }>;
  /** a DICOM study with other roles for its series (dicom-study.ts reassignRoles), off the caller's thread; absent = in-process */
  reassignRoles?(study: Study, roles: Record<string, BratsSequence>): Promise<Study>;
  /** a label map's tumour description (metrics/describe.ts) with the study's images, off the caller's thread; absent = in-process */
  describeTumour?(labels: Uint8Array, geometry: Geometry, images: Volume[]): Promise<TumourDescription>;
  /** the bundled default model, or null when this build has none */
  bundledModel(): Promise<BundledModel | null>;
  /** reads a checkpoint file and says what it holds; throws a FileError when it is not one */
  inspectCheckpoint(path: string): Promise<CheckpointSummary>;
  segmentation(): Promise<SegmentationPort>;
  training(): Promise<TrainingPort>;
  exporter(format: ExportFormat): Promise<ExporterPort>;
  exporterAvailability(format: ExportFormat): Promise<Availability>;
  /** ends the job workers and releases loaded models */
  dispose?(): Promise<void>;
}

function unavailable(what: string, err: unknown): Availability {
  const message = errorMessage(err);
  const missing = /Cannot find module|Failed to load|ERR_MODULE_NOT_FOUND|does not provide an export|is not a function/.test(message);
  return { available: false, reason: missing ? `${what} is not available yet in this build` : `${what} failed to load: ${message}` };
}

/** The picture behind report thumbnails: FLAIR when there is one (tumours show best), else the first. */
function reportImage(study: Study): Volume {
  return study.sequences.flair ?? Object.values(study.sequences)[0]!;
}

/**
 * The ports of a running app or server. Reading studies, segmentation, training and checkpoint
 * inspection run in worker threads (jobs/job-host.ts): the caller's event loop only relays
 * their results.
 */
export function createDefaultPorts(): Ports {
  // Compile the modules the UI's thread needs for jobs now, not in the middle of the first job.
  void Promise.all([import('./jobs/job-host.ts'), import('./jobs/worker-jobs.ts'), import('./jobs/bundled.ts'), import('./onnx/session.ts')]).catch(() => undefined);
  let host: JobHost | undefined;
  const jobs = async (): Promise<JobHost> => {
    if (!host) {
      const { JobHost } = await import('./jobs/job-host.ts');
      host = new JobHost();
    }
    return host;
  };
  return {
    async openPath(path) {
      const [host, { studyFromData }] = await Promise.all([jobs(), import('./jobs/worker-jobs.ts')]);
      const opened = await host.run('open', { path });
      return { studies: opened.studies.map(studyFromData), notes: opened.notes };
    },

    async reassignRoles(study, roles) {
      const [host, { studyFromData, studyToData }] = await Promise.all([jobs(), import('./jobs/worker-jobs.ts')]);
      return studyFromData(await host.run('roles', { study: studyToData(study), roles }));
    },

    async describeTumour(labels, geometry, images) {
      const [host, { describeImageData }] = await Promise.all([jobs(), import('./jobs/worker-jobs.ts')]);
      // the labels are copied (a prediction may be replaced while the worker reads it); images opened by the reader worker are shared
      return host.run('describe', { labels, geometry, images: images.map(describeImageData) });
    },

    async bundledModel() {
      const { bundledModel } = await import('./jobs/bundled.ts');
      return bundledModel().then(
        (model) => model,
        () => null,
      );
    },

    async inspectCheckpoint(path) {
      return (await jobs()).run('inspect', { path });
    },

    async segmentation() {
      let modules;
      try {
        modules = await Promise.all([import('./jobs/bundled.ts'), import('./onnx/session.ts'), import('./jobs/worker-jobs.ts'), jobs()]);
      } catch (err) {
        return { availability: unavailable('the segmentation engine', err), devices: [] };
      }
      const [{ bundledModel }, { DEVICES }, { studyToData }, host] = modules;
      // Without a bundled model the user can still name a checkpoint; say so rather than hide the button.
      const bundled = await bundledModel().then(
        () => null,
        (err: unknown) => errorMessage(err),
      );
      return {
        availability: { available: true, ...(bundled ? { reason: bundled } : {}) },
        devices: [...DEVICES],
        prepare: (choice) => host.run('prepare', choice).then(() => undefined),
        run: (study, options) =>
          host.run(
            'segment',
            {
              study: studyToData(study),
              checkpoint: options.checkpoint,
              device: options.device,
              channels: options.channels,
              postprocess: options.postprocess,
              ...(options.focus !== undefined ? { focus: options.focus } : {}),
              ...(options.precision ? { precision: options.precision } : {}),
            },
            {
              signal: options.signal,
              onControl: (send) => options.onFocusControl?.((index) => send({ kind: 'focus', index })),
              onEvent: (event) => (event.kind === 'slice' ? options.onSlice(event.index, event.mask, event.dice, event.ms) : options.onProgress(event.message)),
            },
          ),
      };
    },

    async training() {
      let host: JobHost;
      try {
        // the engine itself loads in the training worker, not here
        host = await jobs();
      } catch (err) {
        return { availability: unavailable('the training engine', err) };
      }
      return {
        availability: { available: true },
        run: (options, onEvent, signal) => host.run('train', options, { onEvent, signal }),
      };
    },

    async exporter(format) {
      try {
        switch (format) {
          case 'nifti': {
            const { writeNifti } = await import('./io/nifti.ts');
            return {
              availability: { available: true },
              write: async (target, { labels, source }) => {
                await writeNifti(target, labels, { dtype: 'uint8', description: `SAM2-UNet workstation ${source} labels` });
                return [target];
              },
            };
          }
          case 'dicom-seg': {
            const [{ writeDicomSeg, BRATS_SEGMENTS, BINARY_SEGMENTS }, { detectRegionKind, labelsPresent }] = await Promise.all([import('./io/dicom-seg.ts'), import('./metrics/regions.ts')]);
            return {
              availability: { available: true },
              write: async (target, { study, labels, source, run }) => {
                const data = labels.data as Uint8Array;
                const kind = run?.regions ?? detectRegionKind(labelsPresent(data));
                // the SEG references the DICOM images it was computed on: any sequence read from DICOM
                const reference = Object.values(study.sequences).find((v) => v.meta.sopInstanceUids?.length) ?? Object.values(study.sequences)[0]!;
                await writeDicomSeg(target, {
                  labels: data,
                  source: reference,
                  segments: kind === 'brats' ? BRATS_SEGMENTS : BINARY_SEGMENTS,
                  algorithm: { name: source === 'prediction' ? 'SAM2-UNet' : 'ground truth', version: '1' },
                  seriesDescription: source === 'prediction' ? 'SAM2-UNet segmentation' : 'Ground truth segmentation',
                });
                return [target];
              },
            };
          }
          case 'report': {
            const { buildReport, writeReports } = await import('./report/index.ts');
            return {
              availability: { available: true },
              write: async (target, { study, labels, source, run, labelColours, tumour }) => {
                if (source !== 'prediction' || !run) throw new UserError('a report describes a segmentation run: export the prediction, not the ground truth');
                const [{ labelBytes }, { postprocessingSteps }] = await Promise.all([import('./jobs/segment.ts'), import('./model/postprocess.ts')]);
                const report = buildReport({
                  study: study.name,
                  settings: {
                    model: run.model,
                    checkpoint: run.checkpoint,
                    preset: run.preset,
                    device: run.device,
                    inputSize: run.inputSize,
                    threshold: 0.5,
                    notes: run.notes,
                    ...(run.postprocessing ? { postprocessing: postprocessingSteps(run.postprocessing) } : {}),
                    ...(labelColours ? { labelColours } : {}),
                    extra: { channels: run.channels, ...(run.precision && run.precision !== 'float32' ? { precision: run.precision } : {}) },
                  },
                  regionKind: run.regions,
                  image: reportImage(study),
                  pred: labels.data as Uint8Array,
                  ...(tumour ? { tumour } : {}),
                  gt: study.seg ? labelBytes(study.seg) : undefined,
                  timings: { load: run.loadMs, inference: run.ms },
                });
                const files = await writeReports(target, report);
                return [files.html, files.pdf, files.csv, files.json];
              },
            };
          }
        }
      } catch (err) {
        return { availability: unavailable(`export as ${format}`, err) };
      }
    },

    async exporterAvailability(format) {
      return (await this.exporter(format)).availability;
    },

    async dispose() {
      const current = host;
      host = undefined;
      await current?.dispose();
    },
  };
}
