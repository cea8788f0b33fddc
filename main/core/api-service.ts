/**
 * The implementation behind api.ts: one object that the Electron IPC handlers and the web bridge
 * both call. It keeps the opened studies and the latest prediction per study, and reaches the
 * other core services (reader, segmentation jobs, writers, reports) through api-ports.ts, which
 * reports a service that is not available instead of faking one.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, extname, join, parse, resolve } from 'node:path';
import type {
  ApiEvent,
  Capabilities,
  DisplayWindow,
  ExportFormat,
  ExportRequest,
  ExportResult,
  AddModelRequest,
  GetLabelsRequest,
  DicomTags,
  GetTagsRequest,
  SetSequenceRolesRequest,
  StudyRequest,
  RecentStudy,
  Settings,
  Thumbnail,
  ThumbnailRequest,
  TrainRequest,
  TrainingRun,
  GetVolumeRequest,
  JobStarted,
  LabelData,
  MenuAction,
  ModelInfo,
  OpenStudyResult,
  SegmentRequest,
  FocusSliceRequest,
  StudySummary,
  VolumeData,
  WorkstationApi,
  MaskSource,
  TumourView,
  TumourDescription,
  Vec3,
} from './api.ts';
import { EXPORT_FORMATS, MAX_LISTED_ENTRIES } from './api.ts';
import type { DirectoryEntry, DirectoryListing, ListDirectoryRequest, StudyHint } from './api.ts';
import type { CohortCaseRequest, CohortRequest, CohortView, OpenCohortRequest, SegmentCohortRequest } from './api.ts';
import { findBratsCases } from './io/brats.ts';
import { CancelledError, UserError, errorMessage } from './errors.ts';
import type { Study } from './io/study.ts';
import type { Geometry, Volume } from './io/volume.ts';
import type { ExportInput, Ports, PredictionRun } from './api-ports.ts';
import { createDefaultPorts } from './api-ports.ts';
import type { CheckpointSummary } from './jobs/kinds.ts';
import { suggestedExportName } from './export/index.ts';
import { SettingsStore } from './settings.ts';
import { BUNDLED_MODEL_NAME, modelName } from './jobs/bundled.ts';
import { checkInputSize, mapChannels, requireChannels, resolveRunSettings, type RunSettings } from './model/run-settings.ts';
import { displayWindow } from './io/display-window.ts';
import { rgbData } from './io/colour.ts';
import { labelBytes, type VoxelArray } from './io/volume.ts';
import type { PacsConnectionInfo, PacsOpenRequest, PacsSearchRequest, PacsSearchResult, PacsSendRequest, PacsSendResult, PacsSeriesRequest, PacsSeriesSummary, PacsTestResult, SavePacsConnectionRequest, TestPacsConnectionRequest } from './api.ts';
import { PacsService } from './pacs/service.ts';
import type { SecretStore } from './pacs/connection.ts';
import type {
  EditLabelsRequest,
  EditLabelsResult,
  InspectMaskRequest,
  LoadMaskRequest,
  LoadedMask,
  MaskInspection,
  ReviewedStudy,
  SaveReviewedRequest,
  SaveReviewedResult,
  SegmentationSummary,
} from './api.ts';
import type { SegmentationFile } from './io/segmentations.ts';
import type { MaskOrigin } from './review/reviewed.ts';

export interface ServiceOptions {
  mode: 'electron' | 'web';
  /**
   * Decides where exports may go: returns the absolute path to write, or throws a UserError.
   * Electron passes a guard that only accepts paths its save dialog returned; the web bridge
   * one that maps everything into its export folder.
   */
  resolveExportPath: (request: ExportRequest, suggestedName: string) => string;
  /** Electron: shows the save dialog; absent in web mode */
  chooseExportPath?: (suggestedName: string, format: ExportFormat) => Promise<string | null>;
  /** Electron: shows the open dialog; absent in web mode */
  chooseStudyPath?: () => Promise<string | null>;
  /** Electron: shows the open dialog for a checkpoint file; absent in web mode */
  chooseModelPath?: () => Promise<string | null>;
  /**
   * Throws a UserError when the services may not read `path` (Electron: only under folders the
   * user chose); absent = any path (browser mode on loopback, the CLI)
   */
  checkReadable?: (path: string) => void;
  /**
   * Where the file browser starts: the folders the services may read (web: `--root`; absent:
   * the user's home folder and the filesystem root, since then any path may be read)
   */
  browseRoots?: () => string[];
  /** where "Open a sample study" writes its generated case; absent = no sample study */
  samplesDir?: string;
  /** remembered settings, recent studies and added models; default in memory only */
  settings?: SettingsStore;
  /** where training runs write their checkpoints and models; absent = training unavailable */
  trainingDir?: string;
  /** where Save as reviewed writes corrected masks as BraTS cases (a read root); absent = unavailable */
  reviewedDir?: string;
  /** web mode: turns a written file into a URL the browser can download */
  downloadUrl?: (file: string) => string | undefined;
  /** Electron: opens a file with the system's default application (shell.openPath); absent in web mode */
  openPath?: (file: string) => Promise<void>;
  modelsDir?: string;
  ports?: Ports;
  log?: (line: string) => void;
  /** where PACS passwords and tokens are kept (desktop: safeStorage-encrypted file; web: owner-only file); default in memory */
  pacsSecrets?: SecretStore;
  /** the instance cache of studies opened from a PACS; it must be readable (a read root); absent = no opening from a PACS */
  pacsCacheDir?: string;
}

interface OpenedStudy {
  id: string;
  /** the real path (symlinks resolved) of what was opened: opening it again selects it */
  realPath: string;
  study: Study;
  summary: StudySummary;
  /** the latest segmentation, filled in slice by slice */
  prediction?: Uint8Array;
  run?: PredictionRun;
  predictionComplete: boolean;
  job?: RunningJob;
  /** what made the prediction (recorded when it is saved as reviewed) */
  origin?: MaskOrigin;
  /** edits applied to the prediction since it was made or loaded */
  edits: number;
}

interface RunningJob {
  id: string;
  studyId: string;
  controller: AbortController;
  /** slices of the study (a focus must be one of them) */
  slices?: number;
  /** moves a running segmentation's focus, once the job runs */
  setFocus?: (index: number) => void;
  /** the focus asked for before the job could take it */
  pendingFocus?: number;
}

const newId = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;

export class WorkstationService implements WorkstationApi {
  readonly #studies = new Map<string, OpenedStudy>();
  /** files exportMasks wrote: the only ones openExport opens */
  readonly #exported = new Set<string>();
  readonly #jobs = new Map<string, RunningJob>();
  readonly #listeners = new Set<(event: ApiEvent) => void>();
  readonly #options: ServiceOptions;
  readonly #ports: Ports;
  readonly #settings: SettingsStore;
  #training?: RunningJob;
  readonly #pacs: PacsService;
  /** studies opened from a PACS: where to send their results by default */
  readonly #pacsOrigins = new Map<string, { connectionId: string; studyUid: string }>();

  constructor(options: ServiceOptions) {
    this.#options = options;
    this.#ports = options.ports ?? createDefaultPorts();
    this.#settings = options.settings ?? new SettingsStore();
    this.#pacs = new PacsService({ settings: this.#settings, secrets: options.pacsSecrets, cacheDir: options.pacsCacheDir, emit: (event) => this.#emit(event) });
  }

  #readable(path: string): string {
    const absolute = resolve(path);
    this.#options.checkReadable?.(absolute);
    return absolute;
  }

  onEvent(listener: (event: ApiEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The desktop menu's commands reach the page as events, like everything else the main side says. */
  emitMenu(action: MenuAction): void {
    this.#emit({ type: 'menu', action });
  }

  #emit(event: ApiEvent): void {
    // a job is over for callers (focusSlice, cancel) from its closing event on, not from the
    // later turn its body's promise settles in
    if ((event.type === 'done' || event.type === 'trainDone' || event.type === 'cancelled' || event.type === 'failed') && 'jobId' in event) this.#jobs.delete(event.jobId);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#options.log?.(`event listener failed: ${errorMessage(err)}`);
      }
    }
  }

  async capabilities(): Promise<Capabilities> {
    const [segmentation, exports] = await Promise.all([
      this.#ports.segmentation(),
      Promise.all(EXPORT_FORMATS.map(async (format) => [format, await this.#ports.exporterAvailability(format)] as const)),
    ]);
    return {
      mode: this.#options.mode,
      segmentation: segmentation.availability,
      exports: Object.fromEntries(exports) as Capabilities['exports'],
      dialogs: Boolean(this.#options.chooseExportPath && this.#options.chooseStudyPath),
      devices: segmentation.devices,
    };
  }

  /** the model choices loaded ahead of a run already (device and precision) */
  readonly #prepared = new Set<string>();

  /**
   * Loads the default model in the background while a study is being opened: the first press of
   * Segment then finds it loaded and warmed up instead of waiting for a worker, the graph and a
   * session (seconds).
   */
  #prepareSegmentation(): void {
    void (async () => {
      const settings = await this.#settings.settings();
      const choice = { device: settings.device, precision: settings.precision };
      const key = JSON.stringify(choice);
      if (this.#prepared.has(key)) return;
      const engine = await this.#ports.segmentation();
      if (!engine.availability.available || engine.availability.reason || !engine.prepare) return;
      this.#prepared.add(key);
      await engine.prepare(choice).catch((err: unknown) => {
        this.#prepared.delete(key);
        this.#options.log?.(`loading the default model ahead of a segmentation failed: ${errorMessage(err)}`);
      });
    })().catch((err: unknown) => this.#options.log?.(`could not prepare the segmentation: ${errorMessage(err)}`));
  }

  async openStudy({ path }: { path: string }): Promise<OpenStudyResult> {
    const absolute = this.#readable(path);
    this.#prepareSegmentation();
    const real = await realpath(absolute).catch(() => absolute);
    const open = [...this.#studies.values()].filter((s) => s.realPath === real);
    if (open.length) {
      await this.#settings.addRecent(absolute, open.length === 1 ? open[0]!.study.name : basename(absolute));
      return { studies: open.map((s) => s.summary), notes: [`${path} is open already`] };
    }
    const opened = await this.#ports.openPath(absolute);
    if (opened.studies.length === 0 && opened.segmentations?.length) {
      // a SEG by itself: say what it is and whose images it needs (and whether they are open), not fail
      return { studies: [], notes: opened.notes, segmentations: opened.segmentations.map((seg) => this.#segmentationSummary(seg)) };
    }
    return { studies: await this.#adopt(absolute, real, opened.studies, path), notes: opened.notes };
  }

  /** Studies just read from `absolute` become open studies (and the path a recent one). */
  async #adopt(absolute: string, real: string, studies: Study[], asGiven: string): Promise<StudySummary[]> {
    if (studies.length === 0) throw new UserError(`${asGiven}: no image study found here`);
    await this.#settings.addRecent(absolute, studies.length === 1 ? studies[0]!.name : basename(absolute));
    return studies.map((study) => {
      const id = newId('study');
      const summary = summarize(id, study);
      this.#studies.set(id, { id, realPath: real, study, summary, predictionComplete: false, edits: 0 });
      return summary;
    });
  }

  async closeStudy({ studyId }: StudyRequest): Promise<{ closed: boolean }> {
    const opened = this.#studies.get(studyId);
    if (!opened) return { closed: false };
    opened.job?.controller.abort();
    this.#studies.delete(studyId);
    this.#pacsOrigins.delete(studyId);
    return { closed: true };
  }

  async setSequenceRoles({ studyId, roles }: SetSequenceRolesRequest): Promise<StudySummary> {
    const opened = this.#opened(studyId);
    if (opened.job) throw new UserError(`${opened.study.name} is being segmented; cancel the run before changing its sequences`);
    const study = this.#ports.reassignRoles ? await this.#ports.reassignRoles(opened.study, roles) : (await import('./io/dicom-study.ts')).reassignRoles(opened.study, roles);
    if (this.#studies.get(studyId) !== opened) throw new UserError(`${opened.study.name} was closed meanwhile`);
    opened.study = study;
    opened.summary = summarize(studyId, study);
    // the model's inputs changed: the old prediction no longer belongs to this study
    opened.prediction = undefined;
    opened.run = undefined;
    opened.predictionComplete = false;
    opened.origin = undefined;
    opened.edits = 0;
    return opened.summary;
  }

  async getTags({ studyId, sequence }: GetTagsRequest): Promise<DicomTags> {
    const { study } = this.#opened(studyId);
    const volume = study.sequences[sequence];
    if (!volume) throw new UserError(`study ${study.name} has no sequence "${sequence}"`);
    const original = study.series?.find((s) => s.role === sequence)?.volume ?? volume;
    const file = original.meta.sources[0];
    if (study.kind !== 'dicom' || !file) throw new UserError(`${study.name}/${sequence} was not read from DICOM; it has no tags to show`);
    // a study from a PACS names its cache files, written just after it opened
    if (this.#pacsOrigins.has(studyId)) await (this.#ports.pacsCacheSettled && this.#pacs.cacheDir ? this.#ports.pacsCacheSettled(this.#pacs.cacheDir) : this.#pacs.settled());
    const { readDicomTags } = await import('./io/dicom/tags.ts');
    return { file, tags: await readDicomTags(file) };
  }

  #opened(studyId: string): OpenedStudy {
    const opened = this.#studies.get(studyId);
    if (!opened) throw new UserError(`no open study with id ${studyId}; open it again`);
    return opened;
  }

  async getVolume({ studyId, sequence }: GetVolumeRequest): Promise<VolumeData> {
    const { study, summary } = this.#opened(studyId);
    const volume = study.sequences[sequence];
    if (!volume) throw new UserError(`study ${study.name} has no sequence "${sequence}" (it has ${Object.keys(study.sequences).join(', ')})`);
    const { dims, spacing, origin, direction } = volume.geometry;
    const window = summary.sequences.find((s) => s.name === sequence)!.window;
    if (volume.components === 3) return { studyId, sequence, dims, spacing, origin, direction, slope: 1, intercept: 0, window, components: 3, data: displayRgb(volume) };
    if (volume.components !== 1) throw new UserError(`${study.name}/${sequence} has ${volume.components} samples per voxel; only greyscale and colour (3) images can be viewed`);
    return { studyId, sequence, dims, spacing, origin, direction, slope: volume.slope, intercept: volume.intercept, window, components: 1, data: volume.data };
  }

  async getLabels({ studyId, source }: GetLabelsRequest): Promise<LabelData | null> {
    const opened = this.#opened(studyId);
    const data = source === 'groundTruth' ? (opened.study.seg ? labelBytes(opened.study.seg) : undefined) : opened.prediction;
    if (!data) return null;
    return { studyId, source, dims: opened.summary.dims, data };
  }

  /** Described once per mask array: the symmetry fit takes a second or two, and the array changes when a new prediction replaces it. */
  readonly #tumourViews = new WeakMap<Uint8Array, Promise<TumourView>>();

  async describeTumour({ studyId, source }: GetLabelsRequest): Promise<TumourView | null> {
    const opened = this.#opened(studyId);
    const data = source === 'groundTruth' ? (opened.study.seg ? labelBytes(opened.study.seg) : undefined) : opened.prediction;
    if (!data) return null;
    if (source === 'prediction' && opened.job) throw new UserError(`the segmentation of ${opened.study.name} is still running; the tumour is described when it ends`);
    const cached = this.#tumourViews.get(data);
    if (cached) return cached;
    const images = Object.values(opened.study.sequences).filter((v) => v.components === 1);
    const geometry = images[0]?.geometry ?? opened.study.seg!.geometry;
    // the io worker fits the symmetry plane (seconds on a full volume); a second caller waits for the same run
    const view = this.#describe(studyId, source, data, geometry, images);
    this.#tumourViews.set(data, view);
    view.catch(() => this.#tumourViews.get(data) === view && this.#tumourViews.delete(data));
    return view;
  }

  async #describe(studyId: string, source: GetLabelsRequest['source'], data: Uint8Array, geometry: Geometry, images: Volume[]): Promise<TumourView> {
    const { worldToIndex } = await import('./io/volume.ts');
    let description: TumourDescription;
    if (this.#ports.describeTumour) description = await this.#ports.describeTumour(data, geometry, images);
    else {
      const [{ describeTumour }, { detectRegionKind, labelsPresent }] = await Promise.all([import('./metrics/describe.ts'), import('./metrics/regions.ts')]);
      description = describeTumour(data, geometry, detectRegionKind(labelsPresent(data)), { images: images.map((v) => ({ data: v.isScaled ? v.toFloat32() : v.data })) });
    }
    const toIndex = (line: [Vec3, Vec3]): [Vec3, Vec3] => [worldToIndex(geometry, line[0]), worldToIndex(geometry, line[1])];
    return {
      studyId,
      source,
      description,
      ranoLines: description.lesions.map((l) => (l.rano.long_line_lps && l.rano.perp_line_lps ? { long: toIndex(l.rano.long_line_lps), perp: toIndex(l.rano.perp_line_lps) } : null)),
    };
  }

  async listModels(): Promise<ModelInfo[]> {
    const candidates: { path: string; kind: ModelInfo['kind']; name?: string; description?: string }[] = [];
    const bundled = await this.#ports.bundledModel();
    if (bundled) candidates.push({ path: bundled.checkpoint, kind: 'bundled', name: BUNDLED_MODEL_NAME, description: `the ${BUNDLED_MODEL_NAME} (${bundled.checkpoint})` });
    for (const run of await this.listTrainingRuns()) {
      if (run.model) candidates.push({ path: run.model, kind: 'trained', name: run.name, description: `trained here (${run.step} steps)` });
    }
    for (const path of await this.#settings.models()) if (existsSync(path)) candidates.push({ path, kind: 'file' });
    const dir = this.#options.modelsDir;
    const names = dir ? await readdir(dir).catch(() => [] as string[]) : [];
    for (const name of names.filter((n) => ['.safetensors', '.pth', '.pt'].includes(extname(n))).sort()) candidates.push({ path: join(dir!, name), kind: 'file' });
    const models: ModelInfo[] = [];
    for (const c of candidates) {
      if (models.some((m) => m.id === c.path)) continue;
      // what a checkpoint segments is read from the file (once), never assumed
      const model = await this.#model(c.path).catch(() => null);
      if (model) models.push(modelInfo(c.path, c.kind, model.summary, model.run, c.name, c.description));
    }
    return models;
  }

  readonly #summaries = new Map<string, { mtimeMs: number; summary: Promise<CheckpointSummary> }>();

  /**
   * A checkpoint with the settings it runs with (run-settings.ts): its own metadata, the bundled
   * model's config.json when it is the bundled file (however it is named), else defaults. The
   * job worker resolves the same way (sliceModelFromCheckpoint); this copy refuses early.
   */
  async #model(path: string): Promise<{ summary: CheckpointSummary; run: RunSettings; bundled: boolean }> {
    const [summary, bundled] = await Promise.all([this.#checkpointSummary(path), this.#ports.bundledModel()]);
    const isBundled = bundled !== null && (await sameFile(path, bundled.checkpoint));
    // a bare trunk has no head yet: training from it makes a BraTS model (three regions)
    const run = resolveRunSettings({ checkpoint: summary.run, bundled: isBundled ? bundled.run : undefined }, summary.kind === 'trunk' ? 3 : summary.outChannels);
    return { summary, run, bundled: isBundled };
  }

  async #checkpointSummary(path: string): Promise<CheckpointSummary> {
    // a file that cannot be stat'ed goes to the reader, which says what is wrong with it
    const mtimeMs = await stat(path).then(
      (s) => s.mtimeMs,
      () => NaN,
    );
    if (Number.isNaN(mtimeMs)) return this.#ports.inspectCheckpoint(path);
    const cached = this.#summaries.get(path);
    if (cached && cached.mtimeMs === mtimeMs) return cached.summary;
    const summary = this.#ports.inspectCheckpoint(path);
    this.#summaries.set(path, { mtimeMs, summary });
    summary.catch(() => this.#summaries.delete(path));
    return summary;
  }

  async chooseModelPath(): Promise<{ path: string } | null> {
    if (!this.#options.chooseModelPath) throw new UserError('there is no file dialog in browser mode; type the path of the checkpoint on the server');
    const chosen = await this.#options.chooseModelPath();
    return chosen ? { path: chosen } : null;
  }

  async addModel({ path }: AddModelRequest): Promise<ModelInfo> {
    const absolute = this.#readable(path);
    const { summary, run, bundled } = await this.#model(absolute);
    await this.#settings.addModel(absolute);
    return bundled ? modelInfo(absolute, 'bundled', summary, run, BUNDLED_MODEL_NAME) : modelInfo(absolute, 'file', summary, run);
  }

  async listDirectory({ path }: ListDirectoryRequest): Promise<DirectoryListing> {
    if (path === undefined) {
      const roots = this.#options.browseRoots?.() ?? [homedir(), parse(process.cwd()).root];
      const entries: DirectoryEntry[] = [];
      for (const root of [...new Set(roots.map((r) => resolve(r)))]) {
        const info = await stat(root).catch(() => null);
        if (info) entries.push({ name: root, path: root, ...(await entryHint(root, info.isDirectory())) });
      }
      return { path: null, parent: null, entries, truncated: false };
    }
    const absolute = this.#readable(path);
    const info = await stat(absolute).catch(() => null);
    if (!info) throw new UserError(`${path}: no such file or folder`);
    if (!info.isDirectory()) throw new UserError(`${path} is a file, not a folder`);
    const names = await readdir(absolute, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      throw new UserError(`cannot list ${path}: ${err.code === 'EACCES' ? 'permission denied' : err.message}`);
    });
    // hidden files are not studies; sockets and the like cannot be opened
    const visible = names.filter((d) => !d.name.startsWith('.') && (d.isDirectory() || d.isFile() || d.isSymbolicLink()));
    visible.sort((a, b) => Number(b.isDirectory()) - Number(a.isDirectory()) || a.name.localeCompare(b.name));
    const listed = visible.slice(0, MAX_LISTED_ENTRIES);
    const entries: DirectoryEntry[] = [];
    for (const d of listed) {
      const full = join(absolute, d.name);
      const isDirectory = d.isDirectory() || (d.isSymbolicLink() && (await stat(full).then((t) => t.isDirectory(), () => false)));
      entries.push({ name: d.name, path: full, ...(await entryHint(full, isDirectory)) });
    }
    const up = dirname(absolute);
    const parent = up !== absolute && this.#mayRead(up) ? up : null;
    return { path: absolute, parent, entries, truncated: visible.length > listed.length };
  }

  #mayRead(path: string): boolean {
    try {
      this.#options.checkReadable?.(path);
      return true;
    } catch {
      return false;
    }
  }

  async openSampleStudy(): Promise<OpenStudyResult> {
    const dir = this.#options.samplesDir;
    if (!dir) throw new UserError('there is no data folder to write the sample study into (start the server with --data-dir)');
    const { ensureSampleStudy } = await import('./phantom/sample.ts');
    return this.openStudy({ path: await ensureSampleStudy(dir) });
  }

  async recentStudies(): Promise<RecentStudy[]> {
    return this.#settings.recent();
  }

  async getSettings(): Promise<Settings> {
    return this.#settings.settings();
  }

  async updateSettings(changes: Partial<Settings>): Promise<Settings> {
    if (changes.device !== undefined) {
      const { devices } = await this.capabilities();
      if (!devices.includes(changes.device)) throw new UserError(`unknown device "${changes.device}"; choose one of ${devices.join(', ')}`);
    }
    return this.#settings.updateSettings(changes);
  }

  async getThumbnail({ studyId, sequence, size }: ThumbnailRequest): Promise<Thumbnail> {
    const { study, summary } = this.#opened(studyId);
    const volume = study.sequences[sequence];
    if (!volume) throw new UserError(`study ${study.name} has no sequence "${sequence}"`);
    const window = summary.sequences.find((s) => s.name === sequence)!.window;
    return thumbnail(volume, window, size);
  }

  async segment({ studyId, checkpoint, device, channels, minComponentMl, minEtMl, focus, precision }: SegmentRequest): Promise<JobStarted> {
    const opened = this.#opened(studyId);
    // refused here, not in the job: otherwise the user sees a started job fail
    if (!opened.summary.segmentable.available) throw new UserError(opened.summary.segmentable.reason!);
    if (opened.job) throw new UserError(`a segmentation of ${opened.study.name} is already running`);
    const checkpointPath = checkpoint === undefined ? undefined : this.#readable(checkpoint);
    // a study lacking a sequence the model takes is refused before anything starts
    const modelPath = checkpointPath ?? (await this.#ports.bundledModel())?.checkpoint;
    if (modelPath) {
      const { run } = await this.#model(modelPath);
      const sequences = Object.keys(opened.study.sequences);
      const mapping = mapChannels(opened.study.name, sequences, run.channels, channels);
      requireChannels(opened.study.name, sequences, mapping, 'Choose a sequence to feed instead of each missing one in the run panel; the substitution is written into the report.');
    }
    const settings = await this.#settings.settings();
    const chosenDevice = device ?? settings.device;
    const engine = await this.#ports.segmentation();
    if (!engine.availability.available || !engine.run) {
      throw new UserError(`segmentation is not available: ${engine.availability.reason ?? 'unknown reason'}`);
    }
    const [nx, ny, nz] = opened.summary.dims;
    if (focus !== undefined && focus >= nz) throw new UserError(`slice ${focus + 1} is not in ${opened.study.name}, which has ${nz} slices`);
    const job: RunningJob = { id: newId('job'), studyId, controller: new AbortController(), slices: nz };
    opened.job = job;
    opened.prediction = new Uint8Array(nx * ny * nz);
    opened.predictionComplete = false;
    opened.run = undefined;
    opened.origin = undefined;
    opened.edits = 0;
    this.#jobs.set(job.id, job);
    const prediction = opened.prediction;
    const started = performance.now();
    let done = 0;
    const run = engine.run;
    this.#startJob(job, `segmentation of ${opened.study.name}`, async () => {
        const result = await run(opened.study, {
          checkpoint: checkpointPath,
          device: chosenDevice,
          ...(channels?.length ? { channels } : {}),
          postprocess: { minComponentMl: minComponentMl ?? settings.postprocessing.minComponentMl, minEtMl: minEtMl ?? settings.postprocessing.minEtMl },
          signal: job.controller.signal,
          precision: precision ?? settings.precision,
          ...(focus !== undefined ? { focus } : {}),
          onFocusControl: (setFocus) => {
            job.setFocus = setFocus;
            if (job.pendingFocus !== undefined) setFocus(job.pendingFocus);
          },
          onSlice: (index, mask, dice, ms) => {
            if (job.controller.signal.aborted) return;
            if (mask.length !== nx * ny) throw new Error(`segmentation returned ${mask.length} voxels for a ${nx}×${ny} slice`);
            prediction.set(mask, index * nx * ny);
            done++;
            this.#emit({ type: 'sliceResult', jobId: job.id, studyId, index, mask: mask.slice(), dice, ms });
            this.#emit({ type: 'progress', jobId: job.id, done, total: nz });
          },
          onProgress: (message) => this.#emit({ type: 'progress', jobId: job.id, done, total: nz, message }),
        });
        if (job.controller.signal.aborted) throw new CancelledError();
        // the streamed slices were the raw prediction: the views end up showing the post-processed one
        for (const revised of result.revisedSlices ?? []) {
          prediction.set(revised.mask, revised.index * nx * ny);
          this.#emit({ type: 'sliceResult', jobId: job.id, studyId, index: revised.index, mask: revised.mask.slice(), dice: revised.dice, ms: 0 });
        }
        opened.predictionComplete = true;
        opened.run = result.run;
        opened.origin = { kind: 'model', model: result.run.model, checkpoint: result.run.checkpoint };
        opened.edits = 0;
        this.#emit({ type: 'done', jobId: job.id, studyId, dice: result.dice, ms: performance.now() - started, device: result.device });
    }, () => {
      opened.job = undefined;
    });
    return { jobId: job.id, slices: nz };
  }

  async listTrainingRuns(): Promise<TrainingRun[]> {
    const dir = this.#options.trainingDir;
    if (!dir) return [];
    const names = await readdir(dir).catch(() => [] as string[]);
    const runs: TrainingRun[] = [];
    for (const name of names.sort()) {
      const runDir = join(dir, name);
      const state = await readFile(join(runDir, 'checkpoints', 'state.json'), 'utf8').then(
        (text) => JSON.parse(text) as { step?: unknown },
        () => null,
      );
      const model = join(runDir, 'model.safetensors');
      const finished = existsSync(model);
      if (!state && !finished) continue;
      runs.push({ name, dir: runDir, step: typeof state?.step === 'number' ? state.step : 0, ...(finished ? { model } : {}) });
    }
    return runs;
  }

  async train(request: TrainRequest): Promise<JobStarted> {
    const trainingDir = this.#options.trainingDir;
    if (!trainingDir) throw new UserError('training is not available here: no folder for training runs is configured');
    if (this.#training) throw new UserError('a training run is already going; cancel it or wait for it to finish');
    const port = await this.#ports.training();
    if (!port.availability.available || !port.run) throw new UserError(`training is not available: ${port.availability.reason ?? 'unknown reason'}`);
    if (request.data.length === 0) throw new UserError('choose at least one labelled study to train on');
    if (request.steps !== undefined && request.epochs !== undefined) throw new UserError('give the length of the run as steps or as epochs, not both');
    const data = request.data.map((p) => this.#readable(p));
    const val = request.val?.map((p) => this.#readable(p));
    const heldOut = request.heldOut?.map((p) => this.#readable(p));
    const both = heldOut?.filter((p) => data.includes(p)) ?? [];
    if (both.length) throw new UserError(`a held-out study cannot be trained on: ${both.map((p) => basename(p)).join(', ')}`);
    const name = request.name ?? `${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}-${request.strategy}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UserError(`run name "${name}": use letters, digits, ".", "_" and "-" only`);
    const out = join(trainingDir, name);
    const hasState = existsSync(join(out, 'checkpoints', 'state.json'));
    if (request.resume && !hasState) throw new UserError(`there is no training run "${name}" to resume`);
    if (!request.resume && existsSync(out)) throw new UserError(`a training run named "${name}" exists; resume it or choose another name`);

    const bundled = await this.#ports.bundledModel();
    const initPath = request.model === undefined ? bundled?.checkpoint : this.#readable(request.model);
    if (!initPath) throw new UserError('there is no bundled model to start from; choose a checkpoint');
    // fine-tuning goes on as the starting model was trained (run-settings.ts), unless the request says otherwise
    const { summary, run, bundled: initIsBundled } = await this.#model(initPath);
    const init = { checkpoint: initPath, config: initIsBundled ? bundled?.config : undefined };
    const { TRAIN_DEFAULTS } = await import('./train/defaults.ts');
    const size = request.size ?? (run.from.size === 'default' ? TRAIN_DEFAULTS.size : run.size[0]);
    checkInputSize([size, size]);
    const regions = run.regions;

    const job: RunningJob = { id: newId('train'), studyId: '', controller: new AbortController() };
    this.#training = job;
    this.#jobs.set(job.id, job);
    const started = performance.now();
    const runTraining = port.run;
    this.#startJob(job, `training ${name}`, async () => {
        const result = await runTraining(
          {
            data,
            ...(val?.length ? { val } : {}),
            init: { checkpoint: init.checkpoint, config: init.config },
            out,
            strategy: request.strategy,
            lora: { rank: request.loraRank ?? TRAIN_DEFAULTS.loraRank, alpha: request.loraAlpha ?? TRAIN_DEFAULTS.loraAlpha },
            // with a time budget and no length given, the budget decides (the epochs are only a bound)
            ...(request.steps !== undefined ? { steps: request.steps } : { epochs: request.epochs ?? (request.maxSeconds ? 1000 : 1) }),
            ...(request.maxSeconds ? { maxSeconds: request.maxSeconds } : {}),
            ...(heldOut?.length ? { heldOut } : {}),
            baseModel: initIsBundled ? BUNDLED_MODEL_NAME : initPath,
            batch: request.batch ?? TRAIN_DEFAULTS.batch,
            lr: request.lr ?? TRAIN_DEFAULTS.lr,
            weightDecay: TRAIN_DEFAULTS.weightDecay,
            size: [size, size],
            ...(run.from.channels === 'default' ? {} : { channels: run.channels }),
            regions,
            // a fine-tune runs as its starting model did (the bundled model's mirroring included)
            ...(run.from.tta === 'default' ? {} : { tta: run.tta }),
            seed: TRAIN_DEFAULTS.seed,
            emptyRatio: TRAIN_DEFAULTS.emptyRatio,
            checkpointEvery: TRAIN_DEFAULTS.checkpointEvery,
            validateEvery: 1,
            loss: 'official',
            resume: request.resume === true,
          },
          (event) => {
            switch (event.kind) {
              case 'start':
                this.#emit({ type: 'trainStart', jobId: job.id, run: name, ...event.info });
                break;
              case 'step': {
                const { step, totalSteps, epoch, loss, lr, imagesPerSecond, etaSeconds } = event.step;
                this.#emit({ type: 'trainStep', jobId: job.id, step, totalSteps, epoch, loss: loss[3] ?? loss[0] ?? NaN, lr, imagesPerSecond, etaSeconds });
                break;
              }
              case 'validation':
                this.#emit({ type: 'trainValidation', jobId: job.id, step: event.result.step, epoch: event.result.epoch, dice: event.result.meanDice });
                break;
              case 'heldOut':
                this.#emit({ type: 'progress', jobId: job.id, done: event.result.step, total: 0, message: `held-out Dice ${event.phase === 'before' ? 'of the starting model' : 'after training'}: ${Object.entries(event.result.meanDice).map(([r, d]) => `${r} ${d.toFixed(3)}`).join(', ')}` });
                break;
              case 'checkpoint':
                this.#emit({ type: 'progress', jobId: job.id, done: event.step, total: 0, message: `checkpoint written at step ${event.step}` });
                break;
              case 'message':
                this.#emit({ type: 'progress', jobId: job.id, done: 0, total: 0, message: event.text });
                break;
            }
          },
          job.controller.signal,
        );
        if (job.controller.signal.aborted) throw new CancelledError();
        const trainedRun: RunSettings = { ...run, size: [size, size], from: { size: 'checkpoint', channels: 'checkpoint', regions: 'checkpoint', tta: run.from.tta === 'default' ? 'default' : 'checkpoint' } };
        const model = modelInfo(result.model, 'trained', { ...summary, kind: 'sam2unet', outChannels: regions === 'brats' ? 3 : 1, provenance: result.provenance }, trainedRun, name, `trained here: ${result.steps} steps (${request.strategy}) from ${basename(init.checkpoint)}${result.stoppedByBudget ? `, stopped by the ${request.maxSeconds} s budget` : ''}`);
        const { finiteOnly } = await import('./train/provenance.ts');
        const heldOutComparison = result.heldOut
          ? {
              studies: result.heldOut.before.studies.map((s, i) => ({ name: s.name, before: finiteOnly(s.dice), after: finiteOnly(result.heldOut!.after.studies[i]!.dice) })),
              meanBefore: finiteOnly(result.heldOut.before.meanDice),
              meanAfter: finiteOnly(result.heldOut.after.meanDice),
            }
          : undefined;
        this.#emit({ type: 'trainDone', jobId: job.id, model, steps: result.steps, ms: performance.now() - started, ...(heldOutComparison ? { heldOut: heldOutComparison } : {}) });
    }, () => {
      this.#training = undefined;
    });
    return { jobId: job.id, slices: 0 };
  }

  /**
   * Runs a job's body and ends it the one way every job ends: the body's own closing event
   * (done, trainDone), else `cancelled` or `failed`. The body starts on the next turn: the
   * channel sends a call's reply in the turn its handler resolves, so the reply naming the job
   * reaches the client before any of the job's events (rpc/channel.ts, "Ordering").
   */
  #startJob(job: RunningJob, what: string, body: () => Promise<void>, cleanup: () => void): void {
    setImmediate(() => {
      void (async () => {
        try {
          if (job.controller.signal.aborted) throw new CancelledError();
          await body();
        } catch (err) {
          if (err instanceof CancelledError || job.controller.signal.aborted) this.#emit({ type: 'cancelled', jobId: job.id });
          else {
            this.#options.log?.(`${what} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
            this.#emit({ type: 'failed', jobId: job.id, message: errorMessage(err) });
          }
        } finally {
          cleanup();
          this.#jobs.delete(job.id);
        }
      })();
    });
  }

  async focusSlice({ jobId, index }: FocusSliceRequest): Promise<{ focused: boolean }> {
    const job = this.#jobs.get(jobId);
    if (!job || job.slices === undefined || job.controller.signal.aborted) return { focused: false };
    if (index >= job.slices) throw new UserError(`slice ${index + 1} is not in the study being segmented, which has ${job.slices} slices`);
    if (job.setFocus) job.setFocus(index);
    else job.pendingFocus = index;
    return { focused: true };
  }

  async cancel({ jobId }: { jobId: string }): Promise<{ cancelled: boolean }> {
    const job = this.#jobs.get(jobId);
    if (!job) return { cancelled: this.#pacs.cancel(jobId) };
    job.controller.abort();
    return { cancelled: true };
  }

  async chooseStudyPath(): Promise<{ path: string } | null> {
    if (!this.#options.chooseStudyPath) throw new UserError('there is no file dialog in browser mode; type the path of the study on the server');
    const chosen = await this.#options.chooseStudyPath();
    return chosen ? { path: chosen } : null;
  }

  async chooseExportPath({ studyId, format, source }: { studyId: string; format: ExportFormat; source?: MaskSource }): Promise<{ path: string } | null> {
    // a cohort's output folder is chosen the same way (its id in place of a study's)
    const cohort = !this.#studies.has(studyId) && studyId.startsWith('cohort-') ? await (await this.#cohorts()).view(studyId) : undefined;
    const suggested = cohort ? (await import('./cohort/app.ts')).suggestedOutName(cohort.name) : suggestedExportName(this.#opened(studyId).study.name, format, source);
    if (!this.#options.chooseExportPath) throw new UserError('there is no save dialog in browser mode; exports go to the server export folder');
    const chosen = await this.#options.chooseExportPath(suggested, format);
    return chosen ? { path: chosen } : null;
  }

  async exportMasks(request: ExportRequest): Promise<ExportResult> {
    const opened = this.#opened(request.studyId);
    const labels = request.source === 'groundTruth' ? (opened.study.seg ? labelBytes(opened.study.seg) : undefined) : opened.prediction;
    if (!labels) {
      throw new UserError(request.source === 'groundTruth' ? `${opened.study.name} has no ground truth to export` : 'run a segmentation first: there is no prediction to export');
    }
    if (request.source === 'prediction' && !opened.predictionComplete) throw new UserError('the segmentation has not finished; wait for it or run it again');
    const exporter = await this.#ports.exporter(request.format);
    if (!exporter.write) throw new UserError(`export as ${request.format} is not available: ${exporter.availability.reason ?? 'unknown reason'}`);
    const target = this.#options.resolveExportPath(request, suggestedExportName(opened.study.name, request.format, request.source));
    const files = await exporter.write(target, await this.#exportInput(opened, labels, request.source, request.format === 'report'));
    for (const file of files) this.#exported.add(resolve(file));
    const urls = this.#options.downloadUrl ? files.map((f) => this.#options.downloadUrl!(f)) : [];
    const downloadUrl = this.#options.downloadUrl?.(files[0] ?? target);
    if (!downloadUrl) return { files };
    return urls.every((u) => u !== undefined) ? { files, downloadUrl, urls: urls as string[] } : { files, downloadUrl };
  }

  /**
   * What the export writers (core/export) take for one of a study's masks: the labels on the
   * study's grid, how the prediction was made, the app's label colours (the report draws the
   * regions as the app shows them) and, for a report, the tumour description — made in the io
   * worker, or the panel's cached one — so the report's tumour section is what the panel shows.
   */
  async #exportInput(opened: OpenedStudy, labels: Uint8Array, source: MaskSource, withTumour: boolean): Promise<ExportInput> {
    const tumour = withTumour && source === 'prediction' ? (await this.describeTumour({ studyId: opened.id, source: 'prediction' }))?.description : undefined;
    return {
      study: opened.study,
      labels: referenceVolume(opened.study).withData(labels, { id: `${opened.study.name}-${source}`, description: `${source} segmentation` }),
      source,
      ...(source === 'prediction' && opened.run ? { run: opened.edits ? { ...opened.run, notes: [...opened.run.notes, `the mask was corrected by hand in the workstation after the run (${opened.edits} edit${opened.edits === 1 ? '' : 's'})`] } : opened.run } : {}),
      labelColours: (await this.#settings.settings()).labelColors,
      ...(tumour ? { tumour } : {}),
    };
  }

  async openExport({ file }: { file: string }): Promise<{ opened: boolean }> {
    if (!this.#options.openPath) throw new UserError('in browser mode, open the exported file through its link');
    const canonical = resolve(file);
    // only what this app wrote: a compromised renderer must not launch arbitrary files
    if (!this.#exported.has(canonical)) throw new UserError(`refusing to open ${file}: it is not a file this app exported`);
    await this.#options.openPath(canonical);
    return { opened: true };
  }

  // --- PACS (core/pacs/service.ts does the work) ---------------------------------------------

  pacsConnections(): Promise<PacsConnectionInfo[]> {
    return this.#pacs.connections();
  }

  savePacsConnection(request: SavePacsConnectionRequest): Promise<PacsConnectionInfo> {
    return this.#pacs.save(request);
  }

  deletePacsConnection({ id }: { id: string }): Promise<{ deleted: boolean }> {
    return this.#pacs.delete(id);
  }

  testPacsConnection(request: TestPacsConnectionRequest): Promise<PacsTestResult> {
    return this.#pacs.test(request);
  }

  pacsSearch(request: PacsSearchRequest): Promise<PacsSearchResult> {
    return this.#pacs.search(request);
  }

  pacsSeries({ connectionId, studyUid }: PacsSeriesRequest): Promise<PacsSeriesSummary[]> {
    return this.#pacs.series(connectionId, studyUid);
  }

  /**
   * Fetched into the cache and opened from the instances fetched, in the io worker: assembled
   * exactly as the same files in a folder (the study is known by its cache folder, which opens
   * as such later too). A study open already is not fetched again.
   */
  async pacsOpen(request: PacsOpenRequest): Promise<OpenStudyResult> {
    if (this.#jobs.has(request.jobId)) throw new UserError(`job id ${request.jobId} is in use`);
    const folder = this.#pacs.folderOf(request);
    const real = await realpath(folder).catch(() => folder);
    const open = [...this.#studies.values()].filter((s) => s.realPath === real);
    let result: OpenStudyResult;
    if (open.length) result = { studies: open.map((s) => s.summary), notes: [] };
    else {
      const opened = await this.#pacs.open(request, this.#ports.openPacsStudy);
      result = { studies: await this.#adopt(folder, real, opened.studies, folder), notes: opened.notes };
    }
    for (const study of result.studies) this.#pacsOrigins.set(study.id, { connectionId: request.connectionId, studyUid: request.studyUid });
    return result;
  }

  /** The finished prediction's DICOM SEG and PDF report, written to a temporary folder, then stored in the source study. */
  async pacsSend({ studyId, connectionId }: PacsSendRequest): Promise<PacsSendResult> {
    const opened = this.#opened(studyId);
    const labels = opened.prediction;
    if (!labels || !opened.predictionComplete || !opened.run) throw new UserError('run a segmentation first: there is no finished prediction to send');
    const target = connectionId ?? this.#pacsOrigins.get(studyId)?.connectionId;
    if (!target) throw new UserError(`${opened.study.name} was not opened from a PACS: choose the PACS connection to send it to`);
    if (opened.study.kind !== 'dicom') throw new UserError(`${opened.study.name} is not a DICOM study: a DICOM SEG and report need the images' study and instance UIDs`);
    const source = Object.values(opened.study.sequences).find((v) => v.meta.sopInstanceUids?.length);
    if (!source) throw new UserError(`${opened.study.name} has no sequence read from DICOM instances`);
    const [{ mkdtemp, rm }, { tmpdir }, { sendResults }] = await Promise.all([import('node:fs/promises'), import('node:os'), import('./pacs/send.ts')]);
    const [segExporter, reportExporter] = await Promise.all([this.#ports.exporter('dicom-seg'), this.#ports.exporter('report')]);
    if (!segExporter.write || !reportExporter.write) throw new UserError(`sending is not available: ${(segExporter.availability.reason ?? reportExporter.availability.reason) || 'an exporter is missing'}`);
    const input = await this.#exportInput(opened, labels, 'prediction', true);
    const dir = await mkdtemp(join(tmpdir(), 'sam2unet-pacs-send-'));
    try {
      const [segFile] = await segExporter.write(join(dir, 'prediction_seg.dcm'), input);
      const reportFiles = await reportExporter.write(join(dir, 'report'), input);
      const pdfFile = reportFiles.find((f) => f.endsWith('.pdf'));
      if (!segFile || !pdfFile) throw new UserError('the DICOM SEG or the PDF report was not written');
      const { client } = await this.#pacs.client(target);
      const result = await sendResults(client, { seg: await readFile(segFile), pdf: await readFile(pdfFile), source });
      return { studyUid: result.studyUid, sent: result.sent.map(({ kind, sopInstanceUid, seriesUid }) => ({ kind, sopInstanceUid, seriesUid })), warnings: result.warnings, pacs: client.baseUrl };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Cohorts (cohort/app.ts): a folder of studies as a table, "Segment all" in the background

  #cohortService?: Promise<import('./cohort/app.ts').CohortService>;

  #cohorts(): Promise<import('./cohort/app.ts').CohortService> {
    this.#cohortService ??= import('./cohort/app.ts').then(
      ({ CohortService }) =>
        new CohortService({
          readable: (path) => this.#readable(path),
          resolveOut: (cohortId, name, path) => this.#options.resolveExportPath({ studyId: cohortId, format: 'report', source: 'prediction', ...(path ? { path } : {}) }, name),
          runSettings: async (request) => {
            const settings = await this.#settings.settings();
            const { parseDevice } = await import('./onnx/session.ts');
            const checkpoint = request.checkpoint === undefined ? undefined : this.#readable(request.checkpoint);
            return { model: { ...(checkpoint ? { checkpoint } : {}), device: parseDevice(request.device ?? settings.device) }, postprocess: { ...settings.postprocessing } };
          },
          emit: (event) => this.#emit(event),
          ...(this.#options.log ? { log: this.#options.log } : {}),
        }),
    );
    return this.#cohortService;
  }

  async openCohort({ path }: OpenCohortRequest): Promise<CohortView> {
    return (await this.#cohorts()).open({ path });
  }

  async getCohort({ cohortId }: CohortRequest): Promise<CohortView> {
    return (await this.#cohorts()).view(cohortId);
  }

  async segmentCohort(request: SegmentCohortRequest): Promise<JobStarted> {
    const cohorts = await this.#cohorts();
    const job: RunningJob = { id: newId('job'), studyId: '', controller: new AbortController() };
    this.#jobs.set(job.id, job);
    try {
      return await cohorts.segment(request, { id: job.id, signal: job.controller.signal, finish: () => this.#jobs.delete(job.id) });
    } catch (err) {
      this.#jobs.delete(job.id);
      throw err;
    }
  }

  async openCohortCase({ cohortId, case: name }: CohortCaseRequest): Promise<OpenStudyResult> {
    const { path, prediction } = await (await this.#cohorts()).caseToOpen(cohortId, name);
    const result = await this.openStudy({ path });
    const opened = result.studies.length === 1 ? this.#studies.get(result.studies[0]!.id) : undefined;
    // the cohort's prediction, unless the study has one of its own (made here since) or is being segmented
    if (opened && prediction && !opened.prediction && !opened.job && prediction.dims.every((n, i) => n === opened.summary.dims[i])) {
      const { record } = prediction;
      opened.prediction = prediction.labels;
      opened.predictionComplete = true;
      opened.run = {
        model: record.model,
        checkpoint: record.checkpoint,
        preset: record.preset,
        device: record.device,
        inputSize: record.run.size[0],
        ...(record.run.tta === 'mirror' || record.run.tta === 'none' ? { tta: record.run.tta } : {}),
        regions: record.run.regions === 'binary' ? 'binary' : 'brats',
        channels: record.channels,
        notes: record.notes,
        loadMs: 0,
        ms: record.seconds * 1000,
      };
    }
    return result;
  }

  async exportCohort({ cohortId }: CohortRequest): Promise<ExportResult> {
    const files = await (await this.#cohorts()).export(cohortId);
    for (const file of files) this.#exported.add(resolve(file));
    const urls = this.#options.downloadUrl ? files.map((f) => this.#options.downloadUrl!(f)) : [];
    const downloadUrl = this.#options.downloadUrl?.(files[0]!);
    if (!downloadUrl) return { files };
    return urls.every((u) => u !== undefined) ? { files, downloadUrl, urls: urls as string[] } : { files, downloadUrl };
  }

  #segmentationSummary(seg: SegmentationFile): SegmentationSummary {
    const holder = seg.referencedSeriesUid ? [...this.#studies.values()].find((s) => s.summary.series?.some((x) => x.seriesId === seg.referencedSeriesUid) || s.summary.sequences.some((x) => x.seriesId === seg.referencedSeriesUid)) : undefined;
    return {
      file: seg.file,
      description: seg.description,
      segments: seg.segments.map((x) => ({ number: x.number, name: x.name, ...(x.type ? { type: x.type } : {}) })),
      ...(seg.referencedSeriesUid ? { referencedSeriesUid: seg.referencedSeriesUid } : {}),
      referencedInstances: seg.referencedInstances,
      ...(holder ? { openStudyId: holder.id, openStudyName: holder.study.name } : {}),
    };
  }

  async inspectMask({ studyId, path }: InspectMaskRequest): Promise<MaskInspection> {
    const opened = this.#opened(studyId);
    const absolute = this.#readable(path);
    const { inspectMask, maskTargetOf } = await import('./io/masks.ts');
    const target = maskTargetOf(opened.study);
    return this.#ports.inspectMask ? this.#ports.inspectMask(absolute, target) : inspectMask(absolute, target);
  }

  async loadMask({ studyId, path, as, segmentLabels }: LoadMaskRequest): Promise<LoadedMask> {
    const opened = this.#opened(studyId);
    if (opened.job) throw new UserError(`${opened.study.name} is being segmented; cancel the run or wait for it before loading a mask`);
    const absolute = this.#readable(path);
    const { loadMask, maskTargetOf } = await import('./io/masks.ts');
    const target = maskTargetOf(opened.study);
    const loaded = this.#ports.loadMask ? await this.#ports.loadMask(absolute, target, segmentLabels) : await loadMask(absolute, target, segmentLabels);
    if (this.#studies.get(studyId) !== opened) throw new UserError(`${opened.study.name} was closed meanwhile`);
    if (opened.job) throw new UserError(`${opened.study.name} is being segmented; load the mask again when the run ends`);
    const labels = loaded.labels;
    if (as === 'prediction') {
      opened.prediction = labels;
      opened.predictionComplete = true;
      opened.run = undefined;
      opened.origin = { kind: 'file', path: absolute };
      opened.edits = 0;
    } else {
      const reference = referenceVolume(opened.study);
      opened.study = { ...opened.study, seg: reference.withData(labels, { id: `${opened.study.name}-ground-truth`, description: `ground truth loaded from ${absolute}`, modality: 'SEG', sources: [absolute] }) };
      opened.summary = { ...opened.summary, hasGroundTruth: true };
    }
    return { studyId, source: as, dims: opened.summary.dims, data: labels, notes: loaded.notes };
  }

  async editLabels({ studyId, changes }: EditLabelsRequest): Promise<EditLabelsResult> {
    const opened = this.#opened(studyId);
    if (opened.job) throw new UserError(`${opened.study.name} is being segmented; edits can be made when the run ends`);
    const [nx, ny, nz] = opened.summary.dims;
    if (!opened.prediction) {
      // drawing from scratch: the edits start from an empty layer
      opened.prediction = new Uint8Array(nx * ny * nz);
      opened.predictionComplete = true;
      opened.run = undefined;
      opened.origin = { kind: 'drawn' };
      opened.edits = 0;
    }
    const { applyDiff, runsOf, DiffMismatchError } = await import('./edit/diff.ts');
    // every change is checked against a copy first: the edits apply all together or not at all
    const labels = opened.prediction;
    const trial = changes.length > 1 ? labels.slice() : labels;
    let voxels = 0;
    try {
      for (const change of changes) {
        for (const run of runsOf(change)) {
          if (![0, 1, 2, 4].includes(run.after)) throw new DiffMismatchError(`label ${run.after} is not a BraTS label (0, 1, 2, 4)`);
          voxels += run.length;
        }
        applyDiff(trial, change);
      }
    } catch (err) {
      if (err instanceof DiffMismatchError) throw new UserError(`the edits of ${opened.study.name} do not fit its mask on the server (${err.message}); reload the study`);
      throw err;
    }
    if (trial !== labels) labels.set(trial);
    opened.edits += changes.length;
    // the described mask changed: the next describeTumour describes it again
    this.#tumourViews.delete(labels);
    return { voxels, edits: opened.edits };
  }

  async saveReviewed({ studyId, reviewer }: SaveReviewedRequest): Promise<SaveReviewedResult> {
    const opened = this.#opened(studyId);
    const dir = this.#options.reviewedDir;
    if (!dir) throw new UserError('there is no reviewed-studies folder here (start the server with --data-dir)');
    if (opened.job) throw new UserError(`${opened.study.name} is being segmented; save it when the run has ended`);
    const labels = opened.prediction;
    if (!labels || !opened.predictionComplete) throw new UserError(`${opened.study.name} has no mask to save: segment it, load a mask or draw one first`);
    const { caseNameOf, saveReviewedCase } = await import('./review/reviewed.ts');
    const input = {
      dir,
      caseName: caseNameOf(opened.study.name),
      sequences: opened.study.sequences,
      // a copy: the user may go on editing while the files are written
      labels: labels.slice(),
      ...(opened.origin ? { origin: opened.origin } : {}),
      edits: opened.edits,
      ...(reviewer ? { reviewer } : {}),
      source: { path: opened.study.source, kind: opened.study.kind, name: opened.study.name },
    };
    return this.#ports.saveReviewed ? this.#ports.saveReviewed(input) : saveReviewedCase(input);
  }

  async listReviewed(): Promise<ReviewedStudy[]> {
    const dir = this.#options.reviewedDir;
    if (!dir) return [];
    const { listReviewedCases } = await import('./review/reviewed.ts');
    return listReviewedCases(dir, this.#options.log);
  }

  /** Stops running jobs and releases models (window closed, server stopped). */
  async dispose(): Promise<void> {
    this.#pacs.dispose();
    for (const job of this.#jobs.values()) job.controller.abort();
    this.#listeners.clear();
    await this.#ports.dispose?.();
  }
}

/** Whether two paths name one file (a symlink or another spelling of the bundled model's path). */
async function sameFile(a: string, b: string): Promise<boolean> {
  if (resolve(a) === resolve(b)) return true;
  const [sa, sb] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  return sa !== null && sb !== null && sa.dev === sb.dev && sa.ino === sb.ino;
}

/**
 * What a folder entry would open as, from names alone: a folder holding a BraTS case's files, a
 * folder with DICOM files, a NIfTI or DICOM file. A folder is peeked into one level (its names
 * only), so listing a folder of studies stays quick.
 */
async function entryHint(path: string, isDirectory: boolean): Promise<Pick<DirectoryEntry, 'kind' | 'study'>> {
  const fileHint = (name: string): StudyHint | undefined => (/\.nii(\.gz)?$/i.test(name) ? 'nifti' : /\.dcm$/i.test(name) || name === 'DICOMDIR' ? 'dicom' : undefined);
  if (!isDirectory) {
    const study = fileHint(basename(path));
    return study ? { kind: 'file', study } : { kind: 'file' };
  }
  const names = await readdir(path).catch(() => [] as string[]);
  let brats = false;
  try {
    brats = findBratsCases(path, names).cases.length > 0;
  } catch {
    // two files for one role: opening it will say so; here it is just not a clean case
  }
  if (brats) return { kind: 'directory', study: 'brats' };
  const hints = new Set(names.slice(0, 1000).map(fileHint));
  if (hints.has('dicom')) return { kind: 'directory', study: 'dicom' };
  if (hints.has('nifti')) return { kind: 'directory', study: 'nifti' };
  return { kind: 'directory' };
}

function modelInfo(path: string, kind: ModelInfo['kind'], summary: CheckpointSummary, run: RunSettings, name?: string, description?: string): ModelInfo {
  const what = summary.kind === 'trunk' ? 'a SAM2 Hiera trunk (train from it; it cannot segment by itself)' : `SAM2-UNet, ${summary.preset ?? `embed_dim ${summary.embedDim}`}`;
  return {
    id: path,
    name: name ?? modelName(path, false),
    kind,
    regions: summary.kind === 'trunk' || summary.outChannels === 3 ? ['WT', 'TC', 'ET'] : ['WT'],
    description: description ?? `${what}: ${path}`,
    run: { size: run.size, channels: run.channels, regions: run.regions, tta: run.tta, from: run.from },
    ...(summary.provenance ? { provenance: summary.provenance } : {}),
  };
}

/** The middle axial slice of `volume`, windowed to 8-bit grey (colour: its luminance) and shrunk (nearest) to fit `size`. */
export function thumbnail(volume: Volume, window: DisplayWindow, size: number): Thumbnail {
  const [nx, ny, nz] = volume.dims;
  const scale = Math.min(1, size / Math.max(nx, ny));
  const width = Math.max(1, Math.round(nx * scale));
  const height = Math.max(1, Math.round(ny * scale));
  const k = Math.floor(nz / 2);
  const colour = volume.components === 3;
  const plane = colour ? displayRgb(volume).subarray(k * nx * ny * 3, (k + 1) * nx * ny * 3) : volume.sliceView(k);
  const lo = window.center - window.width / 2;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(ny - 1, Math.floor((y + 0.5) / scale));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(nx - 1, Math.floor((x + 0.5) / scale));
      const at = sy * nx + sx;
      // colour: Rec. 601 luma of the RGB samples (the list shows grey thumbnails)
      const value = colour ? 0.299 * plane[3 * at]! + 0.587 * plane[3 * at + 1]! + 0.114 * plane[3 * at + 2]! : plane[at]! * volume.slope + volume.intercept;
      out[y * width + x] = Math.max(0, Math.min(255, Math.round(((value - lo) / window.width) * 255)));
    }
  }
  return { width, height, data: out };
}


function referenceVolume(study: Study): Volume {
  const first = Object.values(study.sequences)[0];
  if (!first) throw new UserError(`${study.name} has no image volume`);
  return first;
}


function summarize(id: string, study: Study): StudySummary {
  const first = referenceVolume(study);
  const { dims, spacing, origin, direction } = first.geometry;
  return {
    id,
    name: study.name,
    kind: study.kind,
    source: study.source,
    dims,
    spacing,
    origin,
    direction,
    sequences: Object.entries(study.sequences).map(([name, volume]) => {
      const series = study.series?.find((s) => s.role === name);
      const origin = { description: series?.description ?? volume.meta.description, ...(study.kind === 'dicom' ? { seriesId: series?.id ?? volume.meta.id } : {}) };
      if (volume.components === 3) return { name, dtype: volume.dtype, components: 3 as const, ...colourDisplay(volume), ...origin };
      const { min, max } = volume.stats();
      return { name, dtype: volume.dtype, components: 1 as const, range: [min, max] as [number, number], window: displayWindow(volume), ...origin };
    }),
    hasGroundTruth: Boolean(study.seg),
    segmentable: segmentable(study),
    metadata: study.metadata ?? {},
    ...(study.series
      ? {
          series: study.series.map(({ id: seriesId, description, seriesNumber, role, recognised, reason, resampled }) => ({
            seriesId,
            description,
            ...(seriesNumber !== undefined ? { seriesNumber } : {}),
            role,
            recognised,
            reason,
            resampled,
          })),
        }
      : {}),
    ...(study.notes?.length ? { notes: study.notes } : {}),
    ...(study.segmentations?.length
      ? {
          masks: study.segmentations.map((seg) => ({
            file: seg.file,
            description: seg.description,
            segments: seg.segments.map((x) => ({ number: x.number, name: x.name, ...(x.type ? { type: x.type } : {}) })),
            ...(seg.referencedSeriesUid ? { referencedSeriesUid: seg.referencedSeriesUid } : {}),
            referencedInstances: seg.referencedInstances,
          })),
        }
      : {}),
  };
}

/** Colour images (photographs, screenshots, secondary captures) are not MRI: the model takes scalar sequences only. */
function segmentable(study: Study): { available: boolean; reason?: string } {
  const colour = Object.entries(study.sequences).filter(([, volume]) => volume.components !== 1);
  if (colour.length === 0) return { available: true };
  const what = Object.keys(study.sequences).length === 1 ? `${study.name} is a colour image` : `${study.name} has colour images (${colour.map(([name]) => name).join(', ')})`;
  return { available: false, reason: `${what}; colour images cannot be segmented as MRI` };
}

/** Interleaved RGB of a colour volume, converted once (YCbCr files) and kept while the volume lives. */
function displayRgb(volume: Volume): VoxelArray {
  let rgb = rgbCache.get(volume);
  if (!rgb) {
    rgb = rgbData(volume);
    rgbCache.set(volume, rgb);
  }
  return rgb;
}
const rgbCache = new WeakMap<Volume, VoxelArray>();

/**
 * Range and window of a colour volume's RGB samples. The window spans the stored bits (0–255 for
 * 8-bit) so that the colours show as stored; a robust window per channel would shift the hues.
 */
function colourDisplay(volume: Volume): { range: [number, number]; window: DisplayWindow } {
  const rgb = displayRgb(volume);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < rgb.length; i++) {
    const value = rgb[i]!;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  if (rgb.length === 0) min = max = 0;
  const bitsStored = Number((volume.meta.extra?.dicom as { BitsStored?: number } | undefined)?.BitsStored ?? rgb.BYTES_PER_ELEMENT * 8);
  const top = rgb instanceof Uint8Array ? 255 : Math.min(2 ** bitsStored - 1, Math.max(max, 1));
  return { range: [min, max], window: { center: top / 2, width: top } };
}
