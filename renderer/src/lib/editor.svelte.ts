/**
 * The mask editor's tools and actions (Svelte 5 runes state; the components only call these):
 * brush, eraser and threshold brush strokes, flood fill and hole filling in a slice, removing an
 * island, interpolating a label between two drawn slices, undo and redo, per-label visibility and
 * locks, and Save as reviewed. Every operation is one of the pure label-map operations of
 * main/core/edit (unit-tested in Node), applied to the prediction layer on screen; its change goes
 * into the study's history and on to the service (label-edits.svelte.ts).
 *
 * Why not @cornerstonejs/tools' segmentation tools and @cornerstonejs/labelmap-interpolation: the
 * views are stack viewports of planes this app reslices itself (planes.ts, for the CPU path and
 * the display conventions), and the label map is drawn by the app's own overlay (overlay.ts: label
 * colours from Settings, outline mode, the prediction/ground-truth difference map). A Cornerstone
 * labelmap belongs to one stack's images, so a stroke in the axial view would not reach the
 * sagittal and coronal stacks without the app keeping the 3D map itself anyway, and Cornerstone
 * would draw a second overlay in its own colours. labelmap-interpolation works on Cornerstone
 * segmentation volumes only, its releases pin @cornerstonejs/core and tools 4.x (the app runs
 * 5.x), and its itk-wasm pipeline fetches its WebAssembly from a CDN by default, which an offline
 * workstation must not do. So the operations are the app's own (core/edit), on the one label map
 * every view, the overlay, the Dice chart and the service share.
 */
import type { Vec3 } from '../../../main/core/api.ts';
import { EDIT_LABELS, brushOffsets, fillHolesSlice, floodFillSlice, paintDab, rangeAround, removeIsland, strokeCentres, writableTable, type Axis, type EditLabel, type PaintOver } from '../../../main/core/edit/ops.ts';
import { InterpolationError, gapAround, interpolateLabel, type InterpolationMode } from '../../../main/core/edit/interpolate.ts';
import type { ChangeRecorder } from '../../../main/core/edit/diff.ts';
import { planeAxes, type ViewName } from './planes.ts';
import type { OverlaySource } from './overlay.ts';
import { messageOf, type JobState, type StudyState } from './study-state.svelte.ts';
import type { StudySummary, VolumeData } from '../../../main/core/api.ts';

/**
 * What the editor needs of the session it edits in (session.svelte.ts is one): named here so the
 * editor does not import the session that owns it.
 */
export interface EditorHost {
  readonly current: StudyState | null;
  readonly study: StudySummary | null;
  readonly colour: boolean;
  readonly job: JobState | null;
  readonly sequence: string;
  cursor: Vec3;
  activeView: ViewName;
  maskVersion: number;
  overlaySource: OverlaySource;
  overlayVisible: boolean;
  sliceOf(view: ViewName): number;
  volumeOf(name: string): Promise<VolumeData | undefined>;
  rescore(state: StudyState, slices?: number[]): void;
  layerChanged(state: StudyState, change: Uint8Array): void;
  saveReviewed(): Promise<boolean>;
}

export const EDIT_TOOLS = ['brush', 'eraser', 'threshold', 'fill', 'island'] as const;
export type EditTool = (typeof EDIT_TOOLS)[number];
export const BRUSH_SHAPES = ['disk', 'sphere'] as const;
export type BrushShape = (typeof BRUSH_SHAPES)[number];
export { EDIT_LABELS };
export type { EditLabel };

export const LABEL_NAMES: Record<EditLabel, string> = { 1: 'necrotic core', 2: 'edema', 4: 'enhancing' };
export const TOOL_NAMES: Record<EditTool, string> = { brush: 'Brush', eraser: 'Eraser', threshold: 'Threshold brush', fill: 'Flood fill', island: 'Remove island' };

interface Stroke {
  state: StudyState;
  view: ViewName;
  last: Vec3;
  offsets: Int32Array;
  table: Uint8Array;
  value: number;
  accept?: (index: number) => boolean;
  step: number;
  recorder: ChangeRecorder;
  what: string;
}

/** Brush sizes in mm: what the size control and the [ ] keys step through. */
export const BRUSH_SIZE_RANGE = { min: 1, max: 60 } as const;

export class Editor {
  readonly #session: EditorHost;
  tool = $state<EditTool | null>(null);
  label = $state<EditLabel>(2);
  /** brush diameter in mm */
  sizeMm = $state(10);
  shape = $state<BrushShape>('disk');
  paintOver = $state<PaintOver>('any');
  /** the label 'only a chosen label' paints over */
  overLabel = $state<EditLabel>(2);
  interpolation = $state<InterpolationMode>('distance');
  thresholdSequence = $state('');
  thresholdLow = $state(0);
  thresholdHigh = $state(0);
  hidden = $state<number[]>([]);
  locked = $state<number[]>([]);
  error = $state<string | null>(null);
  /** what the last action did, in words */
  message = $state<string | null>(null);
  /** ms from each pointer event of the last stroke to its overlay being drawn into the view's canvas */
  strokeLatencies = $state.raw<number[]>([]);
  /** ms from each pointer event of the last stroke to the start of the next animation frame after that draw (when the browser shows it) */
  frameLatencies = $state.raw<number[]>([]);
  #stroke: Stroke | null = null;
  /** pointer-event times whose change is not drawn yet */
  #awaiting: number[] = [];
  #latencies: number[] = [];
  #frames: number[] = [];

  constructor(session: EditorHost) {
    this.#session = session;
  }

  /** Why editing is not possible now, or null. */
  get blocked(): string | null {
    const session = this.#session;
    if (!session.study) return 'open a study first';
    if (session.colour) return 'a colour image has no tumour mask to edit';
    if (session.job?.status === 'running') return 'the segmentation is running: edit when it has finished';
    return null;
  }

  choose(tool: EditTool | null): void {
    this.tool = this.tool === tool ? null : tool;
    this.error = null;
    if (this.tool !== 'threshold') return;
    // the sequence's values are fetched now, and a range not set yet is picked at the crosshair
    const unset = this.thresholdLow === 0 && this.thresholdHigh === 0;
    void (unset ? this.pickThreshold({ onlyIfUnset: true }) : this.prepareThreshold());
  }

  setSize(mm: number): void {
    if (!Number.isFinite(mm)) return;
    this.sizeMm = Math.round(Math.min(BRUSH_SIZE_RANGE.max, Math.max(BRUSH_SIZE_RANGE.min, mm)) * 10) / 10;
  }

  toggleHidden(label: number): void {
    this.hidden = this.hidden.includes(label) ? this.hidden.filter((l) => l !== label) : [...this.hidden, label];
  }

  toggleLocked(label: number): void {
    this.locked = this.locked.includes(label) ? this.locked.filter((l) => l !== label) : [...this.locked, label];
  }

  /** The axis a view slices along, on the study on screen. */
  axisOf(view: ViewName): Axis {
    return planeAxes(this.#session.study!, view).slice;
  }

  /** The brush of the active tool in `view`: voxel offsets and the dab spacing of a stroke. */
  #brush(view: ViewName): { offsets: Int32Array; step: number } {
    const study = this.#session.study!;
    const offsets = brushOffsets(study.spacing, this.sizeMm, this.shape === 'sphere' ? { kind: 'sphere' } : { kind: 'disk', axis: this.axisOf(view) });
    const axes = planeAxes(study, view);
    const finest = Math.min(study.spacing[axes.col.axis], study.spacing[axes.row.axis]);
    // dabs half a radius apart: a quick drag still leaves an even band
    return { offsets, step: Math.max(1, this.sizeMm / 4 / finest) };
  }

  /** The prediction layer to edit, made empty when there is none (drawing from scratch). */
  #layer(): StudyState | null {
    const reason = this.blocked;
    if (reason) {
      this.error = reason;
      return null;
    }
    const session = this.#session;
    const state = session.current!;
    if (!state.prediction) {
      const [nx, ny, nz] = state.summary.dims;
      state.prediction = new Uint8Array(nx * ny * nz);
      state.edits.reset(state.prediction);
      session.rescore(state);
    }
    // the edits must be seen: the layer they change is shown
    if (session.overlaySource === 'groundTruth') session.overlaySource = 'prediction';
    session.overlayVisible = true;
    return state;
  }

  #rule(value: number) {
    const locked = this.locked;
    if (value === 0) {
      // the eraser removes the chosen label, or every label with "paint over: anything"
      return writableTable({ value: 0, over: this.paintOver === 'any' ? 'any' : 'label', overLabel: this.paintOver === 'label' ? this.overLabel : this.label, locked });
    }
    return writableTable({ value, over: this.paintOver, overLabel: this.overLabel, locked });
  }

  #thresholdTest(): ((index: number) => boolean) | string {
    const volume = this.#session.current?.volumes.get(this.thresholdSequence);
    if (!volume) return `the ${this.thresholdSequence || 'threshold'} sequence is not loaded yet`;
    if (volume.components !== 1) return 'the threshold brush needs a greyscale sequence';
    const { data, slope, intercept } = volume;
    const lo = Math.min(this.thresholdLow, this.thresholdHigh);
    const hi = Math.max(this.thresholdLow, this.thresholdHigh);
    return (index) => {
      const v = data[index]! * slope + intercept;
      return v >= lo && v <= hi;
    };
  }

  /** Loads the threshold brush's sequence if needed (its values decide what the brush paints). */
  async prepareThreshold(sequence = this.thresholdSequence || this.#session.sequence): Promise<void> {
    this.thresholdSequence = sequence;
    await this.#session.volumeOf(sequence);
  }

  /** A pointer went down on `view` over voxel `ijk` with a painting tool: the stroke starts with one dab. */
  begin(view: ViewName, ijk: Vec3, eventTime: number): void {
    const tool = this.tool;
    if (tool !== 'brush' && tool !== 'eraser' && tool !== 'threshold') return;
    const state = this.#layer();
    if (!state) return;
    let accept: ((index: number) => boolean) | undefined;
    if (tool === 'threshold') {
      const test = this.#thresholdTest();
      if (typeof test === 'string') {
        this.error = test;
        void this.prepareThreshold();
        return;
      }
      accept = test;
    }
    this.error = null;
    const value = tool === 'eraser' ? 0 : this.label;
    const { offsets, step } = this.#brush(view);
    const recorder = state.edits.recorder(state.prediction!.length);
    this.#stroke = { state, view, last: ijk, offsets, table: this.#rule(value), value, ...(accept ? { accept } : {}), step, recorder, what: tool === 'eraser' ? 'eraser' : tool === 'threshold' ? 'threshold brush' : 'brush' };
    this.#latencies = [];
    this.#frames = [];
    this.#dab(ijk, eventTime);
  }

  /** The pointer moved on with the button down: dabs along the way. */
  extend(ijk: Vec3, eventTime: number): void {
    const stroke = this.#stroke;
    if (!stroke) return;
    // a disk stroke stays in the slice it started in
    const axis = this.axisOf(stroke.view);
    const target: Vec3 = [...ijk];
    if (this.shape === 'disk') target[axis] = stroke.last[axis];
    for (const centre of strokeCentres(stroke.last, target, stroke.step)) this.#dab(centre, eventTime);
    stroke.last = target;
  }

  #dab(centre: Vec3, eventTime: number): void {
    const s = this.#stroke!;
    const study = this.#session.study!;
    const changed = paintDab(s.state.prediction!, study, centre, s.offsets, s.table, s.value, s.recorder, s.accept);
    if (changed) {
      this.#awaiting.push(eventTime);
      this.#session.maskVersion++;
    }
  }

  /** The button came up: the stroke is one undoable step. */
  end(): void {
    const stroke = this.#stroke;
    if (!stroke) return;
    this.#stroke = null;
    const change = stroke.recorder.finish(stroke.state.prediction!);
    this.strokeLatencies = this.#latencies;
    // the last frames are still to come: published when they are
    const frames = this.#frames;
    requestAnimationFrame(() => requestAnimationFrame(() => (this.frameLatencies = [...frames])));
    if (!change) return;
    const axis = this.axisOf(stroke.view);
    this.#commit(stroke.state, change, stroke.what, { axis, slice: stroke.last[axis], label: stroke.value });
  }

  /** The stroke was interrupted (pointer lost): what it painted is taken back. */
  cancel(): void {
    const stroke = this.#stroke;
    if (!stroke) return;
    this.#stroke = null;
    stroke.recorder.revert(stroke.state.prediction!);
    this.#session.maskVersion++;
  }

  /** the view a stroke is being drawn in, or null */
  get strokeView(): ViewName | null {
    return this.#stroke?.view ?? null;
  }

  /** The overlay of the view being painted has been drawn: the latency of the events it shows. */
  noteDrawn(): void {
    if (!this.#awaiting.length) return;
    const now = performance.now();
    const times = this.#awaiting;
    this.#awaiting = [];
    for (const t of times) this.#latencies.push(now - t);
    const frames = this.#frames;
    requestAnimationFrame(() => {
      const shown = performance.now();
      for (const t of times) frames.push(shown - t);
    });
  }

  /** A click with a click tool (flood fill, remove island) on voxel `ijk` of `view`. */
  click(view: ViewName, ijk: Vec3): void {
    if (this.tool !== 'fill' && this.tool !== 'island') return;
    const state = this.#layer();
    if (!state) return;
    const study = this.#session.study!;
    const labels = state.prediction!;
    const recorder = state.edits.recorder(labels.length);
    const axis = this.axisOf(view);
    if (this.tool === 'fill') {
      floodFillSlice(labels, study, axis, ijk, this.#rule(this.label), this.label, recorder);
      this.#finish(state, recorder, 'flood fill', { axis, slice: ijk[axis], label: this.label }, 'nothing to fill there with these paint-over rules');
    } else {
      removeIsland(labels, study, ijk, writableTableAny(this.locked), recorder);
      this.#finish(state, recorder, 'remove island', null, 'no tumour under the pointer (or only locked labels)');
    }
  }

  /** Fills the holes of the chosen label in the slice the active view shows. */
  fillHoles(): void {
    const state = this.#layer();
    if (!state) return;
    const view = this.#session.activeView;
    const axis = this.axisOf(view);
    const slice = this.#session.sliceOf(view);
    const recorder = state.edits.recorder(state.prediction!.length);
    fillHolesSlice(state.prediction!, this.#session.study!, axis, slice, this.label, this.#rule(this.label), recorder);
    this.#finish(state, recorder, 'fill holes', { axis, slice, label: this.label }, `no hole in label ${this.label} on ${view} slice ${slice + 1}`);
  }

  /**
   * Interpolates the chosen label between the two slices of the active view's axis it was last
   * drawn on (at least one slice apart); without two such slices, across the gap the active view
   * shows: between the nearest slices holding the label on either side.
   */
  interpolate(): void {
    const state = this.#layer();
    if (!state) return;
    const view = this.#session.activeView;
    const axis = this.axisOf(view);
    const slices: number[] = [];
    for (const e of [...state.edits.edited].reverse()) {
      if (e.axis !== axis || e.label !== this.label || slices.includes(e.slice)) continue;
      if (slices.length === 1 && Math.abs(slices[0]! - e.slice) < 2) continue;
      slices.push(e.slice);
      if (slices.length === 2) break;
    }
    if (slices.length < 2) {
      const gap = gapAround(state.prediction!, this.#session.study!, axis, this.label, this.#session.sliceOf(view));
      if (!gap) {
        this.error = `draw label ${this.label} (${LABEL_NAMES[this.label]}) on two ${view} slices with at least one slice between them, or go to a slice between two that hold it, then interpolate`;
        return;
      }
      slices.splice(0, slices.length, ...gap);
    }
    const [a, b] = slices as [number, number];
    const recorder = state.edits.recorder(state.prediction!.length);
    try {
      interpolateLabel(state.prediction!, this.#session.study!, axis, this.label, a, b, this.interpolation, this.#rule(this.label), recorder);
    } catch (err) {
      recorder.revert(state.prediction!);
      this.error = err instanceof InterpolationError ? err.message : messageOf(err);
      return;
    }
    this.#finish(state, recorder, `interpolate (${this.interpolation})`, null, `nothing to add between ${view} slices ${Math.min(a, b) + 1} and ${Math.max(a, b) + 1}`);
    if (!this.error) this.message = `label ${this.label} interpolated between ${view} slices ${Math.min(a, b) + 1} and ${Math.max(a, b) + 1}`;
  }

  /**
   * The threshold range from the image values under the brush at the crosshair (5th–95th
   * percentile); `onlyIfUnset`: not over a range typed meanwhile.
   */
  async pickThreshold(options: { onlyIfUnset?: boolean } = {}): Promise<void> {
    const session = this.#session;
    if (!session.study) return;
    await this.prepareThreshold();
    const volume = session.current?.volumes.get(this.thresholdSequence);
    if (!volume) return;
    const { offsets } = this.#brush(session.activeView);
    const range = rangeAround((i) => volume.data[i]! * volume.slope + volume.intercept, session.study, session.cursor, offsets);
    if (!range || (options.onlyIfUnset && (this.thresholdLow !== 0 || this.thresholdHigh !== 0))) return;
    const round = (v: number) => Math.round(v * 100) / 100;
    this.thresholdLow = round(range[0]);
    this.thresholdHigh = round(range[1]);
  }

  #finish(state: StudyState, recorder: ChangeRecorder, what: string, edited: { axis: Axis; slice: number; label: number } | null, nothing: string): void {
    const change = recorder.finish(state.prediction!);
    if (!change) {
      this.message = nothing;
      return;
    }
    this.error = null;
    this.#commit(state, change, what, edited);
  }

  #commit(state: StudyState, change: Uint8Array, what: string, edited: { axis: Axis; slice: number; label: number } | null): void {
    state.edits.history.push({ what, change });
    if (edited && edited.label !== 0) state.edits.edited.push(edited);
    this.message = null;
    this.#session.layerChanged(state, change);
  }

  undo(): void {
    this.#step('undo');
  }

  redo(): void {
    this.#step('redo');
  }

  #step(direction: 'undo' | 'redo'): void {
    const state = this.#session.current;
    if (!state?.prediction || this.#stroke) return;
    if (this.blocked) {
      this.error = this.blocked;
      return;
    }
    try {
      const done = direction === 'undo' ? state.edits.history.undo(state.prediction) : state.edits.history.redo(state.prediction);
      if (!done) return;
      this.message = `${direction === 'undo' ? 'undid' : 'redid'} ${done.what}`;
      this.#session.layerChanged(state, done.change);
    } catch (err) {
      this.error = `cannot ${direction}: ${messageOf(err)}`;
    }
  }

  /** Writes the layer as a reviewed case (after every edit has reached the service). */
  async saveReviewed(): Promise<boolean> {
    return this.#session.saveReviewed();
  }
}

/** Island removal takes any unlocked label, whatever the paint-over rule. */
function writableTableAny(locked: number[]): Uint8Array {
  return writableTable({ value: 0, over: 'any', locked });
}
