/**
 * The renderer's state and actions for the study on screen (Svelte 5 runes): the studies, the
 * volume, the cursor the three views share, the overlay, the segmentation run, the exports and
 * the settings. Components read it and call its methods; they hold no logic of their own.
 * Training has its own state (training.svelte.ts).
 */
import type { TumourView } from '../../../main/core/api.ts';
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
  SequenceRole,
  Settings,
  StudySummary,
  Thumbnail,
  Vec3,
  VolumeData,
} from '../../../main/core/api.ts';
import { labelLut } from './overlay.ts';
import { DEFAULT_SETTINGS } from '../../../main/core/conventions.ts';
import type { OverlaySource } from './overlay.ts';
import { planeAxes } from './planes.ts';
import type { ViewName } from './planes.ts';
import { windowPresets } from './presets.ts';
import { type ChannelMapping, mapChannels } from '../../../main/core/model/run-settings.ts';
import type { LoadedMask, SegmentationSummary } from '../../../main/core/api.ts';
import { axialSliceDice } from '../../../main/core/metrics/slice-dice.ts';
import { detectRegionKind, labelsPresent, type RegionKind } from '../../../main/core/metrics/regions.ts';
import { Editor } from './editor.svelte.ts';
import { StudyState, runShown, type JobState, type SliceScore, type ExportRecord } from './study-state.svelte.ts';

/** What the app shows before (or without) the service's settings: the service's own defaults. */
export { DEFAULT_SETTINGS };

export { messageOf, StudyState, type ExportRecord, type JobState, type SliceScore } from './study-state.svelte.ts';

export class Session {
  readonly api: ClientApi;
  capabilities = $state<Capabilities | null>(null);
  settings = $state<Settings>(structuredClone(DEFAULT_SETTINGS));
  recent = $state<RecentStudy[]>([]);
  studies = $state<StudySummary[]>([]);
  /** the state of the study on screen; every open study has one in `#states` */
  current = $state<StudyState | null>(null);
  /** the view that keyboard slice stepping moves (the last one pointed at) */
  activeView = $state<ViewName>('axial');
  /** bumps on every change of a mask on screen (streamed slices, switching studies) */
  maskVersion = $state(0);
  /** the Tumour panel's description of the mask on screen; the axial view draws its RANO lines */
  tumour = $state.raw<TumourView | null>(null);
  overlayVisible = $state(true);
  showCrosshair = $state(true);
  models = $state<ModelInfo[]>([]);
  /** a ModelInfo id, or '' for the service's bundled default */
  model = $state('');
  device = $state('auto');
  /** the dialog on screen */
  dialog = $state<'export' | 'settings' | 'tags' | 'files' | 'pacs' | null>(null);
  busy = $state<string | null>(null);
  error = $state<string | null>(null);
  /** opens a folder of studies as a cohort (set by cohort.svelte.ts; the file browser offers it) */
  openCohort = $state.raw<((path: string) => Promise<boolean>) | null>(null);
  /** the mask editor's tools and actions */
  readonly editor: Editor = new Editor(this);
  /** DICOM SEG files opened by themselves: what they are and whose images they need */
  segmentationsFound = $state<SegmentationSummary[]>([]);
  /** leaving a study with unsaved edits waits for the user's answer */
  leaving = $state<{ study: StudySummary; then: () => Promise<void>; what: string } | null>(null);
  #states = new Map<string, StudyState>();
  #thumbnails = new Map<string, Promise<Thumbnail | null>>();

  constructor(api: ClientApi) {
    this.api = api;
    api.onEvent((event) => this.#onEvent(event));
  }

  // The study on screen's fields, read and written through its StudyState (null/empty without one).
  get study(): StudySummary | null {
    return this.current?.summary ?? null;
  }
  get sequence(): string {
    return this.current?.sequence ?? '';
  }
  set sequence(name: string) {
    if (this.current) this.current.sequence = name;
  }
  get window(): DisplayWindow {
    return this.current?.window ?? { center: 0, width: 1 };
  }
  set window(window: DisplayWindow) {
    if (this.current) this.current.window = window;
  }
  get volume(): VolumeData | null {
    return this.current?.volume ?? null;
  }
  set volume(volume: VolumeData | null) {
    if (this.current) this.current.volume = volume;
  }
  /** the voxel (i, j, k) the three views go through */
  get cursor(): Vec3 {
    return this.current?.cursor ?? [0, 0, 0];
  }
  set cursor(cursor: Vec3) {
    if (!this.current) return;
    this.current.cursor = cursor;
    this.#followFocus(this.current);
  }
  get groundTruth(): Uint8Array | null {
    return this.current?.groundTruth ?? null;
  }
  set groundTruth(labels: Uint8Array | null) {
    if (this.current) this.current.groundTruth = labels;
  }
  /** filled slice by slice while a segmentation streams in; `maskVersion` bumps on every change */
  get prediction(): Uint8Array | null {
    return this.current?.prediction ?? null;
  }
  set prediction(labels: Uint8Array | null) {
    if (this.current) this.current.prediction = labels;
  }
  get overlaySource(): OverlaySource {
    return this.current?.overlaySource ?? 'groundTruth';
  }
  set overlaySource(source: OverlaySource) {
    if (this.current) this.current.overlaySource = source;
  }
  get job(): JobState | null {
    return this.current?.job ?? null;
  }
  set job(job: JobState | null) {
    if (this.current) this.current.job = job;
  }
  get scores(): SliceScore[] {
    return this.current?.scores ?? [];
  }
  set scores(scores: SliceScore[]) {
    if (this.current) this.current.scores = scores;
  }
  get exports(): ExportRecord[] {
    return this.current?.exports ?? [];
  }
  set exports(exports: ExportRecord[]) {
    if (this.current) this.current.exports = exports;
  }

  /** The user has read a note about a study: it is no longer shown. */
  dismissNote(studyId: string, note: string): void {
    const state = this.#states.get(studyId);
    if (state) state.notes = state.notes.filter((n) => n !== note);
  }

  /** The state kept for an open study (undefined once it is closed). */
  stateOf(studyId: string): StudyState | undefined {
    return this.#states.get(studyId);
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
  lut = $derived(labelLut(this.settings.labelColors, this.settings.overlayOpacity, this.editor.hidden));

  #run<T>(label: string, action: () => Promise<T>): Promise<T | undefined> {
    return runShown(this, label, action);
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
    if (!this.models.some((m) => m.id === this.model)) this.selectBundledModel();
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

  /** A cohort's case (cohort.svelte.ts): its study, with the prediction the cohort made over it when there is one. */
  async openCohortCase(cohortId: string, caseName: string): Promise<boolean> {
    const opened = await this.#opened(await this.#run(`opening ${caseName}`, () => this.api.openCohortCase({ cohortId, case: caseName })));
    const state = this.current;
    if (!opened || !state || state.job) return opened;
    // selecting the study (select) usually fetched the service's prediction already
    if (!state.prediction) {
      const labels = await this.#quiet(() => this.api.getLabels({ studyId: state.summary.id, source: 'prediction' }), null);
      if (!labels || this.current !== state || state.prediction) return opened;
      state.prediction = labels.data;
      state.edits.reset(labels.data);
      state.overlaySource = 'prediction';
    }
    const slices = state.summary.dims[2];
    // a finished run as far as the views and the Export dialog are concerned
    state.job = { id: `cohort:${cohortId}`, studyId: state.summary.id, done: slices, total: slices, status: 'done', message: 'segmented with its cohort' };
    this.overlayVisible = true;
    this.maskVersion++;
    return opened;
  }

  /** The first screen's "Open a sample study": the service generates it once, then opens it. */
  async openSample(): Promise<boolean> {
    return this.#opened(await this.#run('generating and opening the sample study', () => this.api.openSampleStudy({})));
  }

  /** Studies another part of the page opened (the PACS browser): listed and selected like any. */
  adoptOpened(result: OpenStudyResult): Promise<boolean> {
    return this.#opened(result);
  }

  async #opened(result: OpenStudyResult | undefined): Promise<boolean> {
    if (!result) return false;
    // a segmentation by itself: listed with the series it needs (and the open study holding it)
    if (result.segmentations?.length) this.segmentationsFound = [...this.segmentationsFound.filter((s) => !result.segmentations!.some((r) => r.file === s.file)), ...result.segmentations];
    if (!result.studies.length) return true;
    // a study open already (the service knows it by its real path) is selected, not added again
    const added = result.studies.filter((s) => !this.#states.has(s.id));
    for (const summary of added) this.#states.set(summary.id, new StudyState(summary));
    this.studies = [...this.studies, ...added];
    const first = result.studies[0] && this.studies.find((s) => s.id === result.studies[0]!.id);
    // what the opening said (files skipped, series kept apart, "open already") goes with the study it puts on screen
    const state = first && this.#states.get(first.id);
    // (a note of one study's own assembly came with that study's summary already)
    const general = result.notes.filter((n) => !result.studies.some((s) => s.notes?.includes(n)));
    if (state) state.notes = [...state.notes, ...general.filter((n) => !state.notes.includes(n))];
    if (first) await this.select(first);
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

  /** Browse…: the desktop app's native dialog, or browser mode's file browser of the server's folders */
  chooseStudy(): void {
    if (this.capabilities?.dialogs) void this.browse();
    else this.dialog = 'files';
  }

  /** Electron: pick a study in the native dialog, then open it */
  async browse(): Promise<void> {
    const chosen = await this.#run('choosing a study', () => this.api.chooseStudyPath({}));
    if (chosen) await this.open(chosen.path);
  }

  /**
   * Runs `then` once the user has agreed to leave the study on screen: at once when it has no
   * unsaved edits, else after the leave dialog (Save as reviewed, leave without saving, or stay).
   */
  whenLeft(study: StudySummary | undefined, then: () => Promise<void>, what: string): Promise<void> | void {
    const state = study ? this.#states.get(study.id) : undefined;
    if (!study || !state?.edits.dirty) return then();
    this.leaving = { study, then, what };
  }

  /** The leave dialog's answer: 'save' saves as reviewed first, 'discard' leaves as it is, 'stay' stays. */
  async answerLeave(answer: 'save' | 'discard' | 'stay'): Promise<void> {
    const leaving = this.leaving;
    this.leaving = null;
    if (!leaving || answer === 'stay') return;
    if (answer === 'save' && !(await this.saveReviewed(leaving.study))) return;
    if (answer === 'discard') this.#states.get(leaving.study.id)?.edits.saved();
    await leaving.then();
  }

  /** Puts an open study on screen: as it was left (sequence, window, cursor, results), or fresh the first time. */
  async select(study: StudySummary): Promise<void> {
    if (this.current && this.current.summary.id !== study.id && this.current.edits.dirty) {
      await this.whenLeft(this.current.summary, () => this.select(study), `Going to ${study.name}.`);
      return;
    }
    this.editor.cancel();
    let state = this.#states.get(study.id);
    if (!state) {
      state = new StudyState(study);
      this.#states.set(study.id, state);
      if (!this.studies.some((s) => s.id === study.id)) this.studies = [...this.studies, study];
    }
    this.current = state;
    this.maskVersion++;
    if (!state.volume) {
      const preferred = study.sequences.find((s) => s.name === 'flair') ?? study.sequences[0];
      if (preferred) await this.setSequence(preferred.name);
    }
    if (study.hasGroundTruth && !state.groundTruthLoaded) {
      const labels = await this.#run('loading the ground truth', () => this.api.getLabels({ studyId: study.id, source: 'groundTruth' }));
      state.groundTruth = labels?.data ?? null;
      state.groundTruthLoaded = labels !== undefined;
      this.maskVersion++;
    }
    if (!state.predictionLoaded) {
      // the service may hold a prediction from before this page (browser mode, a reload): edits start from it
      state.predictionLoaded = true;
      const labels = await this.#quiet(() => this.api.getLabels({ studyId: study.id, source: 'prediction' }), null);
      if (labels && !state.prediction && !state.job) {
        state.prediction = labels.data;
        state.edits.reset(labels.data);
        state.overlaySource = 'prediction';
        this.rescore(state);
        this.maskVersion++;
      }
    }
  }

  /** Closes a study: the service forgets it (cancelling its run), and the next one in the list comes on screen. */
  async closeStudy(study: StudySummary): Promise<void> {
    if (this.#states.get(study.id)?.edits.dirty) {
      await this.whenLeft(study, () => this.closeStudy(study), 'Closing the study loses them.');
      return;
    }
    const index = this.studies.findIndex((s) => s.id === study.id);
    if (index < 0) return;
    await this.#quiet(() => this.api.closeStudy({ studyId: study.id }), { closed: false });
    this.#states.delete(study.id);
    for (const key of this.#thumbnails.keys()) if (key.startsWith(`${study.id}/`)) this.#thumbnails.delete(key);
    this.studies = this.studies.filter((s) => s.id !== study.id);
    if (this.current?.summary.id !== study.id) return;
    const next = this.studies[Math.min(index, this.studies.length - 1)];
    if (next) await this.select(next);
    else {
      this.current = null;
      this.maskVersion++;
    }
  }

  /** Gives DICOM series other sequence roles; the study comes back re-assembled and without its old prediction. */
  async setSequenceRoles(study: StudySummary, roles: Record<string, SequenceRole>): Promise<void> {
    const updated = await this.#run('changing the sequences', () => this.api.setSequenceRoles({ studyId: study.id, roles }));
    if (!updated) return;
    const old = this.#states.get(study.id);
    const state = new StudyState(updated);
    if (old) {
      state.cursor = old.cursor;
      state.groundTruth = old.groundTruth;
      state.groundTruthLoaded = old.groundTruthLoaded;
    }
    // the sequence on screen is fetched before the state is swapped, so the views never show an empty study
    const sequence = updated.sequences.find((s) => s.name === old?.sequence) ?? updated.sequences.find((s) => s.name === 'flair') ?? updated.sequences[0];
    const volume = sequence ? await this.#run(`loading ${sequence.name}`, () => this.api.getVolume({ studyId: study.id, sequence: sequence.name })) : undefined;
    if (sequence && volume) {
      state.volumes.set(sequence.name, volume);
      state.sequence = sequence.name;
      state.window = { ...volume.window };
      state.volume = volume;
    }
    if (this.#states.get(study.id) !== old) return;
    this.#states.set(study.id, state);
    for (const key of this.#thumbnails.keys()) if (key.startsWith(`${study.id}/`)) this.#thumbnails.delete(key);
    this.studies = this.studies.map((s) => (s.id === study.id ? updated : s));
    if (this.current === old) {
      this.current = state;
      this.maskVersion++;
    }
  }

  /** A sequence of the study on screen, fetched once (the threshold brush reads another sequence's values). */
  async volumeOf(name: string): Promise<VolumeData | undefined> {
    const state = this.current;
    if (!state) return undefined;
    const study = state.summary;
    let volume = state.volumes.get(name);
    if (!volume) {
      volume = await this.#run(`loading ${name}`, () => this.api.getVolume({ studyId: study.id, sequence: name }));
      if (!volume || this.#states.get(study.id) !== state) return undefined;
      state.volumes.set(name, volume);
    }
    return volume;
  }

  async setSequence(name: string): Promise<void> {
    const state = this.current;
    if (!state) return;
    const volume = await this.volumeOf(name);
    if (!volume || this.current !== state) return;
    state.sequence = name;
    state.window = { ...volume.window };
    state.volume = volume;
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

  /** Adds a checkpoint to the model list and selects it; false (with the error shown) when it is refused. */
  async addModel(path: string): Promise<boolean> {
    const trimmed = path.trim();
    if (!trimmed) {
      this.error = 'type the path of a checkpoint first';
      return false;
    }
    const added = await this.#run('checking the checkpoint', () => this.api.addModel({ path: trimmed }));
    if (!added) return false;
    await this.refreshModels();
    if (!this.models.some((m) => m.id === added.id)) this.models = [...this.models, added];
    this.model = added.id;
    return true;
  }

  /** Selects the bundled model in the run panel. */
  selectBundledModel(): void {
    this.model = this.models.find((m) => m.kind === 'bundled')?.id ?? '';
  }

  /** Electron: pick a checkpoint in the native dialog, then add it */
  async browseModel(): Promise<void> {
    const chosen = await this.#run('choosing a checkpoint', () => this.api.chooseModelPath({}));
    if (chosen) await this.addModel(chosen.path);
  }

  /** The model the run panel has selected (the bundled one when none is). */
  get selectedModel(): ModelInfo | undefined {
    return this.models.find((m) => m.id === this.model) ?? this.models.find((m) => m.kind === 'bundled');
  }

  /**
   * Which sequence of the study on screen feeds each channel of the selected model, with the
   * user's substitutes (run-settings.ts, the rule the service applies); null without a study or model.
   */
  get channelMapping(): ChannelMapping | null {
    const study = this.study;
    const model = this.selectedModel;
    if (!study || !model) return null;
    const sequences = study.sequences.map((s) => s.name);
    const picks = this.current?.channels ?? [];
    const chosen = picks.some((p) => p) ? model.run.channels.map((_, i) => picks[i] ?? '') : undefined;
    try {
      return mapChannels(study.name, sequences, model.run.channels, chosen);
    } catch {
      // a pick that no longer fits (another model): start again from the model's own sequences
      return mapChannels(study.name, sequences, model.run.channels);
    }
  }

  /** Feeds `sequence` ('' = the model's own) to model channel `channel` of the study on screen. */
  chooseChannel(channel: number, sequence: string): void {
    const state = this.current;
    if (!state) return;
    // one entry per model channel, so the service reads them channel by channel
    const count = Math.max(channel + 1, this.selectedModel?.run.channels.length ?? 3);
    const picks = Array.from({ length: count }, (_, i) => state.channels[i] ?? '');
    picks[channel] = sequence;
    state.channels = picks;
  }

  /**
   * `checkpoint`: a model path on the service's machine; '' uses the bundled default.
   * `channels`: the study's sequence per model channel (default: the run panel's substitutes).
   */
  async segment(checkpoint = this.model, channels = this.current?.channels ?? []): Promise<void> {
    const study = this.study;
    if (!study) return;
    // the menu and the deep link reach here without the (disabled) button
    if (!study.segmentable.available) {
      this.error = study.segmentable.reason ?? 'this study cannot be segmented';
      return;
    }
    const path = checkpoint.trim();
    const device = this.device && this.device !== 'auto' ? { device: this.device } : {};
    const state = this.current!;
    if (state.edits.dirty) {
      await this.whenLeft(study, () => this.segment(checkpoint, channels), 'A new segmentation replaces the edited mask.');
      return;
    }
    const substitutes = channels.some((c) => c) ? { channels: [...channels] } : {};
    // the slice on screen first, then outward from it; the job follows when the user scrolls (#followFocus)
    const focus = state.cursor[2];
    const started = await this.#run('starting the segmentation', () => this.api.segment({ studyId: study.id, ...(path ? { checkpoint: path } : {}), ...device, ...substitutes, focus }));
    if (!started || this.#states.get(study.id) !== state) return;
    const [nx, ny, nz] = study.dims;
    // into the state of the study it runs on: the user may have switched studies meanwhile
    state.prediction = new Uint8Array(nx * ny * nz);
    state.edits.reset(null);
    this.maskVersion++;
    state.scores = [];
    state.exports = [];
    state.overlaySource = 'prediction';
    this.overlayVisible = true;
    // the job's events follow this reply on the one channel (main/core/rpc/channel.ts): none came before it
    state.job = { id: started.jobId, studyId: study.id, done: 0, total: started.slices, status: 'running' };
    this.#focusSent.set(started.jobId, focus);
    // the user may have scrolled while the job was starting
    this.#followFocus(state);
  }

  /** the focus each running job was last told, and whether a focusSlice call is on its way */
  #focusSent = new Map<string, number>();
  #focusInFlight = new Set<string>();

  /**
   * Tells the study's running segmentation the axial slice now on screen, so it does the slices
   * there next. Calls are not stacked up while scrolling: one at a time, then the latest slice.
   */
  #followFocus(state: StudyState): void {
    const job = state.job;
    if (!job || job.status !== 'running' || this.#focusInFlight.has(job.id)) return;
    const index = state.cursor[2];
    if (this.#focusSent.get(job.id) === index) return;
    this.#focusSent.set(job.id, index);
    this.#focusInFlight.add(job.id);
    void this.#quiet(() => this.api.focusSlice({ jobId: job.id, index }), { focused: false }).finally(() => {
      this.#focusInFlight.delete(job.id);
      this.#followFocus(state);
    });
  }

  async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.status !== 'running') return;
    await this.#run('cancelling', () => this.api.cancel({ jobId: job.id }));
  }

  async exportMasks(format: ExportFormat, source: MaskSource): Promise<void> {
    const study = this.study;
    const state = this.current;
    if (!study || !state) return;
    await this.#run(`exporting ${format}`, async () => {
      // what is exported is what is on screen: every edit has reached the service first
      await state.edits.settled(this.api, study.id);
      let path: string | undefined;
      if (this.capabilities?.dialogs) {
        const chosen = await this.api.chooseExportPath({ studyId: study.id, format, source });
        if (!chosen) return;
        path = chosen.path;
      }
      const result = await this.api.exportMasks({ studyId: study.id, format, source, ...(path ? { path } : {}) });
      state.exports = [...state.exports, { format, source, ...result }];
    });
  }

  /** Region kind of a study's ground truth (BraTS or binary), for its per-slice Dice. */
  #regionKinds = new WeakMap<Uint8Array, RegionKind>();
  #regionKind(truth: Uint8Array): RegionKind {
    let kind = this.#regionKinds.get(truth);
    if (!kind) {
      kind = detectRegionKind(labelsPresent(truth));
      this.#regionKinds.set(truth, kind);
    }
    return kind;
  }

  /**
   * Per-slice scores of the prediction layer recomputed for `slices` (all when absent): Dice
   * against the ground truth, or none (the chart then plots the volume per slice). Every entry is
   * a new object, so the chart's per-slice caches refresh.
   */
  rescore(state: StudyState, slices?: number[]): void {
    const prediction = state.prediction;
    if (!prediction) {
      state.scores = [];
      return;
    }
    const { dims, spacing } = state.summary;
    const truth = state.groundTruth;
    const which = slices ?? Array.from({ length: dims[2] }, (_, k) => k);
    const kind = truth ? this.#regionKind(truth) : 'brats';
    const fresh = new Map(which.map((k) => [k, { index: k, dice: truth ? axialSliceDice(prediction, truth, dims, spacing, k, kind) : null, ms: 0 }]));
    const kept = slices ? state.scores.filter((s) => !fresh.has(s.index)) : [];
    const old = new Map(state.scores.map((s) => [s.index, s.ms]));
    state.scores = [...kept, ...[...fresh.values()].map((s) => ({ ...s, ms: old.get(s.index) ?? 0 }))].sort((a, b) => a.index - b.index);
  }

  /** A change of the prediction layer (an edit, undo or redo): sent on, volumes and Dice of its slices updated, views redrawn. */
  layerChanged(state: StudyState, change: Uint8Array): void {
    const summary = state.edits.changed(change, state.summary.dims, this.api, state.summary.id);
    this.rescore(state, summary.axialSlices);
    if (state === this.current) this.maskVersion++;
  }

  /** A mask loaded onto a study (loadMask's reply): the editable layer or the ground truth. */
  applyLoadedMask(state: StudyState, loaded: LoadedMask): void {
    if (loaded.source === 'prediction') {
      state.prediction = loaded.data;
      state.job = null;
      state.exports = [];
      state.edits.reset(loaded.data);
      state.overlaySource = 'prediction';
    } else {
      state.groundTruth = loaded.data;
      state.groundTruthLoaded = true;
      state.summary = { ...state.summary, hasGroundTruth: true };
      this.studies = this.studies.map((s) => (s.id === state.summary.id ? state.summary : s));
      if (!state.prediction) state.overlaySource = 'groundTruth';
    }
    this.rescore(state);
    if (state === this.current) {
      this.overlayVisible = true;
      this.maskVersion++;
    }
  }

  /** Save as reviewed: every edit sent, then the layer written into the reviewed-studies folder. */
  async saveReviewed(study: StudySummary | null = this.study): Promise<boolean> {
    const state = study ? this.#states.get(study.id) : undefined;
    if (!study || !state) return false;
    const result = await this.#run(`saving ${study.name} as reviewed`, async () => {
      await state.edits.settled(this.api, study.id);
      return this.api.saveReviewed({ studyId: study.id });
    });
    if (!result) return false;
    state.reviewed = result;
    state.edits.saved();
    this.reviewedVersion++;
    return true;
  }

  /** bumps on every Save as reviewed (the training panel lists the reviewed studies again) */
  reviewedVersion = $state(0);

  /** Whether any open study has edits not saved as reviewed (the window asks before it closes). */
  get unsavedEdits(): boolean {
    return [...this.#states.values()].some((s) => s.edits.dirty);
  }

  /** A job event goes to the study the job runs on, on screen or not. */
  #onEvent(received: ApiEvent): void {
    const state = received.type === 'menu' ? undefined : [...this.#states.values()].find((s) => s.job?.id === received.jobId);
    const job = state?.job;
    if (!state || !job || received.type === 'menu') return;
    const event = received;
    const onScreen = state === this.current;
    if (event.type === 'done' || event.type === 'failed' || event.type === 'cancelled') this.#focusSent.delete(job.id);
    switch (event.type) {
      case 'sliceResult': {
        const prediction = state.prediction;
        if (!prediction) return;
        const [nx, ny] = state.summary.dims;
        prediction.set(event.mask, event.index * nx * ny);
        if (onScreen) this.maskVersion++;
        // post-processing sends the slices it changed again when the job ends: they replace the raw ones
        const at = state.scores.findIndex((s) => s.index === event.index);
        const entry = { index: event.index, dice: event.dice, ms: event.ms };
        state.scores = at < 0 ? [...state.scores, entry] : state.scores.map((s, i) => (i === at ? { ...entry, ms: s.ms } : s));
        break;
      }
      case 'progress':
        state.job = { ...job, done: event.done, total: event.total, message: event.message ?? job.message };
        break;
      case 'done':
        state.job = { ...job, status: 'done', done: job.total, dice: event.dice, ms: event.ms, device: event.device };
        state.edits.reset(state.prediction);
        break;
      case 'failed':
        state.job = { ...job, status: 'failed', message: event.message };
        this.error = `segmentation of ${state.summary.name} failed: ${event.message}`;
        break;
      case 'cancelled':
        state.job = { ...job, status: 'cancelled' };
        break;
    }
  }
}
