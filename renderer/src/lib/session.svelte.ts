/**
 * The renderer's state and actions for the study on screen (Svelte 5 runes): the studies, the
 * volume, the cursor the three views share, the overlay, the segmentation run, the exports and
 * the settings. Components read it and call its methods; they hold no logic of their own.
 * Training has its own state (training.svelte.ts).
 */
import type {
  ApiEvent,
  Capabilities,
  ClientApi,
  DisplayWindow,
  ExportFormat,
  MaskSource,
  ModelInfo,
  OpenStudyResult,
  RecentStudy,
  RegionDice,
  Settings,
  StudySummary,
  Thumbnail,
  Vec3,
  VolumeData,
} from '../../../main/core/api.ts';
import { labelLut } from './overlay.ts';
import { DEFAULT_SETTINGS } from '../../../main/core/conventions.ts';
import type { OverlaySource } from './overlay.ts';
import { EarlyEvents } from './early-events.ts';
import { planeAxes } from './planes.ts';
import type { ViewName } from './planes.ts';
import { windowPresets } from './presets.ts';

export interface SliceScore {
  index: number;
  dice: RegionDice | null;
  ms: number;
}

export interface JobState {
  id: string;
  studyId: string;
  done: number;
  total: number;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  message?: string;
  device?: string;
  dice?: RegionDice | null;
  ms?: number;
}

export interface ExportRecord {
  format: ExportFormat;
  source: MaskSource;
  files: string[];
  downloadUrl?: string;
}

/** What the app shows before (or without) the service's settings: the service's own defaults. */
export { DEFAULT_SETTINGS };

export const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Session {
  readonly api: ClientApi;
  capabilities = $state<Capabilities | null>(null);
  settings = $state<Settings>(structuredClone(DEFAULT_SETTINGS));
  recent = $state<RecentStudy[]>([]);
  studies = $state<StudySummary[]>([]);
  notes = $state<string[]>([]);
  study = $state<StudySummary | null>(null);
  sequence = $state('');
  window = $state<DisplayWindow>({ center: 0, width: 1 });
  volume = $state.raw<VolumeData | null>(null);
  /** the voxel (i, j, k) the three views go through */
  cursor = $state<Vec3>([0, 0, 0]);
  /** the view that keyboard slice stepping moves (the last one pointed at) */
  activeView = $state<ViewName>('axial');
  groundTruth = $state.raw<Uint8Array | null>(null);
  /** filled slice by slice while a segmentation streams in; `maskVersion` bumps on every change */
  prediction = $state.raw<Uint8Array | null>(null);
  maskVersion = $state(0);
  overlayVisible = $state(true);
  overlaySource = $state<OverlaySource>('groundTruth');
  showCrosshair = $state(true);
  models = $state<ModelInfo[]>([]);
  /** a ModelInfo id, or '' for the service's bundled default */
  model = $state('');
  device = $state('auto');
  /** the dialog on screen */
  dialog = $state<'export' | 'settings' | null>(null);
  busy = $state<string | null>(null);
  error = $state<string | null>(null);
  job = $state<JobState | null>(null);
  scores = $state<SliceScore[]>([]);
  exports = $state<ExportRecord[]>([]);
  #volumes = new Map<string, VolumeData>();
  #early = new EarlyEvents();
  #thumbnails = new Map<string, Promise<Thumbnail | null>>();

  constructor(api: ClientApi) {
    this.api = api;
    api.onEvent((event) => this.#onEvent(event));
  }

  /** Axial slice count: the slices a segmentation streams and the Dice chart plots. */
  get sliceCount(): number {
    return this.study?.dims[2] ?? 0;
  }

  get axialSlice(): number {
    return this.cursor[2];
  }

  /** The volume on screen is colour (RGB): no segmentation, no overlay, the window acts on each channel. */
  get colour(): boolean {
    return this.volume?.components === 3;
  }

  /** Packed label colours for the overlay, from the settings. */
  lut = $derived(labelLut(this.settings.labelColors, this.settings.overlayOpacity));

  async #run<T>(label: string, action: () => Promise<T>): Promise<T | undefined> {
    this.busy = label;
    this.error = null;
    try {
      return await action();
    } catch (err) {
      this.error = messageOf(err);
      return undefined;
    } finally {
      this.busy = null;
    }
  }

  /** A call whose failure must not interrupt the user (lists, settings): the fallback is used. */
  async #quiet<T>(action: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await action();
    } catch {
      return fallback;
    }
  }

  async start(): Promise<void> {
    this.capabilities = (await this.#run('connecting', () => this.api.capabilities({}))) ?? null;
    const [settings, recent] = await Promise.all([this.#quiet(() => this.api.getSettings({}), DEFAULT_SETTINGS), this.#quiet(() => this.api.recentStudies({}), [])]);
    this.settings = settings;
    this.device = settings.device;
    this.recent = recent;
    await this.refreshModels();
  }

  async refreshModels(): Promise<void> {
    this.models = await this.#quiet(() => this.api.listModels({}), []);
    const bundled = this.models.find((m) => m.kind === 'bundled');
    if (!this.models.some((m) => m.id === this.model)) this.model = bundled?.id ?? '';
  }

  async updateSettings(change: Partial<Settings>): Promise<void> {
    // shown at once; the service's answer (what it persisted) follows
    this.settings = { ...this.settings, ...change };
    const saved = await this.#quiet(() => this.api.updateSettings(change), null);
    if (saved) this.settings = saved;
  }

  async open(path: string): Promise<boolean> {
    const trimmed = path.trim();
    if (!trimmed) {
      this.error = 'type the path of a study folder or file first';
      return false;
    }
    return this.#opened(await this.#run(`opening ${trimmed}`, () => this.api.openStudy({ path: trimmed })));
  }

  /** Electron: a file or folder dropped on the window (the preload knows its path). */
  async openDropped(file: File): Promise<boolean> {
    const openDropped = this.api.openDropped;
    if (!openDropped) return false;
    return this.#opened(await this.#run(`opening ${file.name}`, () => openDropped(file)));
  }

  async #opened(result: OpenStudyResult | undefined): Promise<boolean> {
    if (!result) return false;
    this.studies = [...this.studies, ...result.studies];
    this.notes = result.notes;
    if (result.studies[0]) await this.select(result.studies[0]);
    this.recent = await this.#quiet(() => this.api.recentStudies({}), this.recent);
    return true;
  }

  /** A sequence's thumbnail, fetched once; null when the service cannot make one. */
  thumbnail(studyId: string, sequence: string, size: number): Promise<Thumbnail | null> {
    const key = `${studyId}/${sequence}/${size}`;
    let pending = this.#thumbnails.get(key);
    if (!pending) {
      pending = this.#quiet(() => this.api.getThumbnail({ studyId, sequence, size }), null);
      this.#thumbnails.set(key, pending);
    }
    return pending;
  }

  /** Opens the study on screen in another sequence (from the study list). */
  async selectSequence(study: StudySummary, sequence: string): Promise<void> {
    if (this.study?.id !== study.id) await this.select(study);
    if (this.study?.id === study.id) await this.setSequence(sequence);
  }

  /** Electron: pick a study in the native dialog, then open it */
  async browse(): Promise<void> {
    const chosen = await this.#run('choosing a study', () => this.api.chooseStudyPath({}));
    if (chosen) await this.open(chosen.path);
  }

  async select(study: StudySummary): Promise<void> {
    if (this.job?.status === 'running') {
      this.error = 'cancel the running segmentation before switching studies';
      return;
    }
    this.study = study;
    this.#volumes.clear();
    this.prediction = null;
    this.groundTruth = null;
    this.scores = [];
    this.job = null;
    this.exports = [];
    this.overlaySource = 'groundTruth';
    this.cursor = study.dims.map((n) => Math.floor(n / 2)) as Vec3;
    const preferred = study.sequences.find((s) => s.name === 'flair') ?? study.sequences[0];
    if (preferred) await this.setSequence(preferred.name);
    if (study.hasGroundTruth) {
      const labels = await this.#run('loading the ground truth', () => this.api.getLabels({ studyId: study.id, source: 'groundTruth' }));
      this.groundTruth = labels?.data ?? null;
      this.maskVersion++;
    }
  }

  async setSequence(name: string): Promise<void> {
    const study = this.study;
    if (!study) return;
    let volume = this.#volumes.get(name);
    if (!volume) {
      volume = await this.#run(`loading ${name}`, () => this.api.getVolume({ studyId: study.id, sequence: name }));
      if (!volume || this.study !== study) return;
      this.#volumes.set(name, volume);
    }
    this.sequence = name;
    this.window = { ...volume.window };
    this.volume = volume;
  }

  /** The slice view `view` shows. */
  sliceOf(view: ViewName): number {
    return this.study ? this.cursor[planeAxes(this.study, view).slice] : 0;
  }

  sliceCountOf(view: ViewName): number {
    return this.study ? this.study.dims[planeAxes(this.study, view).slice] : 0;
  }

  setSliceOf(view: ViewName, s: number): void {
    if (!this.study) return;
    const axis = planeAxes(this.study, view).slice;
    const next = [...this.cursor] as Vec3;
    next[axis] = Math.max(0, Math.min(this.study.dims[axis] - 1, Math.round(s)));
    this.cursor = next;
  }

  step(view: ViewName, delta: number): void {
    this.setSliceOf(view, this.sliceOf(view) + delta);
  }

  /** Crosshair sync: a point picked in one view moves the other two to it. */
  setCursor(ijk: Vec3): void {
    this.cursor = ijk;
  }

  setWindow(window: DisplayWindow): void {
    this.window = { center: window.center, width: Math.max(1e-6, window.width) };
  }

  resetWindow(): void {
    if (this.volume) this.window = { ...this.volume.window };
  }

  applyPreset(index: number): void {
    const summary = this.study?.sequences.find((s) => s.name === this.sequence);
    const preset = summary ? windowPresets(summary)[index] : undefined;
    if (preset) this.setWindow(preset.window);
  }

  /** Which overlays make sense now: ground truth and difference need the ground truth, etc. */
  get overlaySources(): OverlaySource[] {
    const sources: OverlaySource[] = [];
    if (this.prediction) sources.push('prediction');
    if (this.groundTruth) sources.push('groundTruth');
    if (this.prediction && this.groundTruth) sources.push('difference');
    return sources;
  }

  async addModel(path: string): Promise<void> {
    const trimmed = path.trim();
    if (!trimmed) {
      this.error = 'type the path of a checkpoint first';
      return;
    }
    const added = await this.#run('checking the checkpoint', () => this.api.addModel({ path: trimmed }));
    if (!added) return;
    await this.refreshModels();
    if (!this.models.some((m) => m.id === added.id)) this.models = [...this.models, added];
    this.model = added.id;
  }

  /** Electron: pick a checkpoint in the native dialog, then add it */
  async browseModel(): Promise<void> {
    const chosen = await this.#run('choosing a checkpoint', () => this.api.chooseModelPath({}));
    if (chosen) await this.addModel(chosen.path);
  }

  /** `checkpoint`: a model path on the service's machine; '' uses the bundled default */
  async segment(checkpoint = this.model): Promise<void> {
    const study = this.study;
    if (!study) return;
    // the menu and the deep link reach here without the (disabled) button
    if (!study.segmentable.available) {
      this.error = study.segmentable.reason ?? 'this study cannot be segmented';
      return;
    }
    const path = checkpoint.trim();
    const device = this.device && this.device !== 'auto' ? { device: this.device } : {};
    this.#early.begin();
    const started = await this.#run('starting the segmentation', () => this.api.segment({ studyId: study.id, ...(path ? { checkpoint: path } : {}), ...device }));
    const early = this.#early.end(started?.jobId);
    if (!started) return;
    const [nx, ny, nz] = study.dims;
    this.prediction = new Uint8Array(nx * ny * nz);
    this.maskVersion++;
    this.scores = [];
    this.exports = [];
    this.overlaySource = 'prediction';
    this.overlayVisible = true;
    this.job = { id: started.jobId, studyId: study.id, done: 0, total: started.slices, status: 'running' };
    for (const event of early) this.#onEvent(event);
  }

  async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.status !== 'running') return;
    await this.#run('cancelling', () => this.api.cancel({ jobId: job.id }));
  }

  async exportMasks(format: ExportFormat, source: MaskSource): Promise<void> {
    const study = this.study;
    if (!study) return;
    await this.#run(`exporting ${format}`, async () => {
      let path: string | undefined;
      if (this.capabilities?.dialogs) {
        const chosen = await this.api.chooseExportPath({ studyId: study.id, format });
        if (!chosen) return;
        path = chosen.path;
      }
      const result = await this.api.exportMasks({ studyId: study.id, format, source, ...(path ? { path } : {}) });
      this.exports = [...this.exports, { format, source, ...result }];
    });
  }

  #onEvent(received: ApiEvent): void {
    const job = this.job;
    const event = this.#early.ofJob(received, job?.id);
    if (!job || !event) return;
    switch (event.type) {
      case 'sliceResult': {
        const prediction = this.prediction;
        if (!prediction || !this.study) return;
        const [nx, ny] = this.study.dims;
        prediction.set(event.mask, event.index * nx * ny);
        this.maskVersion++;
        this.scores = [...this.scores, { index: event.index, dice: event.dice, ms: event.ms }];
        break;
      }
      case 'progress':
        this.job = { ...job, done: event.done, total: event.total, message: event.message ?? job.message };
        break;
      case 'done':
        this.job = { ...job, status: 'done', done: job.total, dice: event.dice, ms: event.ms, device: event.device };
        break;
      case 'failed':
        this.job = { ...job, status: 'failed', message: event.message };
        this.error = `segmentation failed: ${event.message}`;
        break;
      case 'cancelled':
        this.job = { ...job, status: 'cancelled' };
        break;
    }
  }
}
