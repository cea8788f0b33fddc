/**
 * The renderer's state and actions (Svelte 5 runes). Components read it and call its methods;
 * they hold no logic of their own.
 */
import type {
  ApiEvent,
  Capabilities,
  ClientApi,
  DisplayWindow,
  ExportFormat,
  MaskSource,
  RegionDice,
  StudySummary,
  VolumeData,
} from '../../../main/core/api.ts';

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

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Session {
  readonly api: ClientApi;
  capabilities = $state<Capabilities | null>(null);
  studies = $state<StudySummary[]>([]);
  notes = $state<string[]>([]);
  study = $state<StudySummary | null>(null);
  sequence = $state('');
  slice = $state(0);
  window = $state<DisplayWindow>({ center: 0, width: 1 });
  volume = $state.raw<VolumeData | null>(null);
  groundTruth = $state.raw<Uint8Array | null>(null);
  /** filled slice by slice while a segmentation streams in; `maskVersion` bumps on every change */
  prediction = $state.raw<Uint8Array | null>(null);
  maskVersion = $state(0);
  showGroundTruth = $state(true);
  showPrediction = $state(true);
  busy = $state<string | null>(null);
  error = $state<string | null>(null);
  job = $state<JobState | null>(null);
  scores = $state<SliceScore[]>([]);
  exports = $state<ExportRecord[]>([]);
  #volumes = new Map<string, VolumeData>();

  constructor(api: ClientApi) {
    this.api = api;
    api.onEvent((event) => this.#onEvent(event));
  }

  get sliceCount(): number {
    return this.study?.dims[2] ?? 0;
  }

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

  async start(): Promise<void> {
    this.capabilities = (await this.#run('connecting', () => this.api.capabilities({}))) ?? null;
  }

  async open(path: string): Promise<void> {
    const trimmed = path.trim();
    if (!trimmed) {
      this.error = 'type the path of a study folder or file first';
      return;
    }
    const result = await this.#run(`opening ${trimmed}`, () => this.api.openStudy({ path: trimmed }));
    if (!result) return;
    this.studies = [...this.studies, ...result.studies];
    this.notes = result.notes;
    if (result.studies[0]) await this.select(result.studies[0]);
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
    this.slice = Math.floor(study.dims[2] / 2);
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

  setSlice(k: number): void {
    const last = this.sliceCount - 1;
    this.slice = Math.max(0, Math.min(last, Math.round(k)));
  }

  step(delta: number): void {
    this.setSlice(this.slice + delta);
  }

  setWindow(window: DisplayWindow): void {
    this.window = { center: window.center, width: Math.max(1e-6, window.width) };
  }

  resetWindow(): void {
    if (this.volume) this.window = { ...this.volume.window };
  }

  /** `checkpoint`: a model file on the service's machine; empty uses the bundled model */
  async segment(checkpoint = ''): Promise<void> {
    const study = this.study;
    if (!study) return;
    const path = checkpoint.trim();
    const started = await this.#run('starting the segmentation', () => this.api.segment({ studyId: study.id, ...(path ? { checkpoint: path } : {}) }));
    if (!started) return;
    const [nx, ny, nz] = study.dims;
    this.prediction = new Uint8Array(nx * ny * nz);
    this.maskVersion++;
    this.scores = [];
    this.job = { id: started.jobId, studyId: study.id, done: 0, total: started.slices, status: 'running' };
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

  #onEvent(event: ApiEvent): void {
    const job = this.job;
    if (!job || event.jobId !== job.id) return;
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
