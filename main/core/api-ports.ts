/**
 * Ports from the api service to the other core services. Each is loaded lazily (so the web
 * server and the Electron window start fast) and reports itself unavailable, with the reason,
 * when its module is missing or fails to load — the UI shows that instead of faking results.
 */
import type { Availability, ExportFormat, MaskInspection, RegionDice, TumourDescription } from './api.ts';
import type { LoadedMask, MaskTarget } from './io/masks.ts';
import type { SaveReviewedInput, SaveReviewedOutcome } from './review/reviewed.ts';
import type { SegmentationFile } from './io/segmentations.ts';
import { errorMessage } from './errors.ts';
import type { ExportInput } from './export/index.ts';
import type { BratsSequence, Study } from './io/study.ts';
import type { Geometry, Volume } from './io/volume.ts';
import type { JobHost } from './jobs/job-host.ts';
import type { BundledModel } from './jobs/bundled.ts';
import type { CheckpointSummary, PacsOpenJobPayload, SegmentationOutcome, TrainJobEvent } from './jobs/kinds.ts';
import type { PacsFetchSummary } from './pacs/open-study.ts';
import type { RetrieveProgress } from './pacs/retrieve.ts';
import type { TrainOptions, TrainResult } from './train/trainer.ts';
import type { PostprocessOptions } from './model/postprocess.ts';

export type { ExportInput } from './export/index.ts';
export type { PredictionRun, SegmentationOutcome } from './jobs/kinds.ts';

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

export interface SegmentationPort {
  availability: Availability;
  devices: string[];
  run?: (study: Study, options: SegmentationRunOptions) => Promise<SegmentationOutcome>;
  /** loads a model (default the bundled one) ahead of a run, so that the first run starts at once */
  prepare?: (choice: { checkpoint?: string; device?: string; precision?: string }) => Promise<void>;
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

/** What opening a study from a PACS gives: the studies, notes, and what the fetch did. */
export interface PacsOpenedStudy {
  studies: Study[];
  notes: string[];
  fetched: PacsFetchSummary;
}

export type PacsOpenPort = (job: PacsOpenJobPayload, options: { signal: AbortSignal; onProgress: (progress: RetrieveProgress) => void }) => Promise<PacsOpenedStudy>;

export interface Ports {
  /** `segmentations`: DICOM SEG files opened without their images (io/open.ts, segmentationsOnly 'return') */
  openPath(path: string): Promise<{ studies: Study[]; notes: string[]; segmentations?: SegmentationFile[] }>;
  /** a study fetched from a PACS and opened from the instances fetched (pacs/open-study.ts), off the caller's thread; absent = in-process */
  openPacsStudy?: PacsOpenPort;
  /** resolves when the cache writes openPacsStudy left going on in `cacheDir` are done (the files a study names then exist) */
  pacsCacheSettled?(cacheDir: string): Promise<void>;
  /** a DICOM study with other roles for its series (dicom-study.ts reassignRoles), off the caller's thread; absent = in-process */
  reassignRoles?(study: Study, roles: Record<string, BratsSequence>): Promise<Study>;
  /** a label map's tumour description (metrics/describe.ts) with the study's images, off the caller's thread; absent = in-process */
  describeTumour?(labels: Uint8Array, geometry: Geometry, images: Volume[]): Promise<TumourDescription>;
  /** what a mask file is (io/masks.ts inspectMask), off the caller's thread; absent = in-process */
  inspectMask?(path: string, target: MaskTarget): Promise<MaskInspection>;
  /** a mask file's labels on the study's grid (io/masks.ts loadMask), off the caller's thread; absent = in-process */
  loadMask?(path: string, target: MaskTarget, segmentLabels?: Record<string, number>): Promise<LoadedMask>;
  /** writes a reviewed case (review/reviewed.ts), off the caller's thread; absent = in-process */
  saveReviewed?(input: SaveReviewedInput): Promise<SaveReviewedOutcome>;
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

/**
 * The ports of a running app or server. Reading studies, segmentation, training and checkpoint
 * inspection run in worker threads (jobs/job-host.ts): the caller's event loop only relays
 * their results.
 */
export function createDefaultPorts(): Ports {
  // Compile the modules the UI's thread needs for jobs now, not in the middle of the first job.
  void Promise.all([import('./jobs/job-host.ts'), import('./jobs/kinds.ts'), import('./jobs/bundled.ts'), import('./onnx/session.ts')]).catch(() => undefined);
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
      const [host, { studyFromData }] = await Promise.all([jobs(), import('./jobs/kinds.ts')]);
      const opened = await host.run('open', { path });
      return { studies: opened.studies.map(studyFromData), notes: opened.notes, segmentations: opened.segmentations };
    },

    async openPacsStudy(job, { signal, onProgress }) {
      const [host, { studyFromData }] = await Promise.all([jobs(), import('./jobs/kinds.ts')]);
      const opened = await host.run('pacsOpen', job, { signal, onEvent: onProgress });
      return { studies: opened.studies.map(studyFromData), notes: opened.notes, fetched: opened.fetched };
    },

    async pacsCacheSettled(cacheDir) {
      // no worker yet: no writes either
      if (!host) return;
      await host.run('pacsSettle', { cacheDir });
    },

    async reassignRoles(study, roles) {
      const [host, { studyFromData, studyToData }] = await Promise.all([jobs(), import('./jobs/kinds.ts')]);
      return studyFromData(await host.run('roles', { study: studyToData(study), roles }));
    },

    async describeTumour(labels, geometry, images) {
      const [host, { describeImageData }] = await Promise.all([jobs(), import('./jobs/kinds.ts')]);
      // the labels are copied (a prediction may be replaced while the worker reads it); images opened by the reader worker are shared
      return host.run('describe', { labels, geometry, images: images.map(describeImageData) });
    },

    async inspectMask(path, target) {
      return (await jobs()).run('mask', { op: 'inspect', path, target }) as Promise<MaskInspection>;
    },

    async loadMask(path, target, segmentLabels) {
      return (await jobs()).run('mask', { op: 'load', path, target, ...(segmentLabels ? { segmentLabels } : {}) }) as Promise<LoadedMask>;
    },

    async saveReviewed(input) {
      const [host, { describeImageData }] = await Promise.all([jobs(), import('./jobs/kinds.ts')]);
      const sequences = Object.fromEntries(Object.entries(input.sequences).map(([name, volume]) => [name, describeImageData(volume)]));
      return host.run('review', { ...input, sequences });
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
        modules = await Promise.all([import('./jobs/bundled.ts'), import('./onnx/session.ts'), import('./jobs/kinds.ts'), jobs()]);
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
        const writers = await import('./export/index.ts');
        const write = { nifti: writers.writeMaskNifti, 'dicom-seg': writers.writeMaskDicomSeg, report: writers.writeReport }[format];
        return { availability: { available: true }, write };
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
