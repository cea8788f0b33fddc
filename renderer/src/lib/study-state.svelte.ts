/**
 * What the renderer keeps about one open study (StudyState) and the small types around it:
 * apart from session.svelte.ts so that the pieces the session drives (the mask editor) can name
 * them without importing the session.
 */
import type { DisplayWindow, ExportFormat, MaskSource, RegionDice, SaveReviewedResult, StudySummary, Vec3, VolumeData } from '../../../main/core/api.ts';
import type { OverlaySource } from './overlay.ts';
import { LabelEdits } from './label-edits.svelte.ts';

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
  /** web mode: where the browser opens each of `files` */
  urls?: string[];
}

export const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Runs a user action with `label` shown as busy; a failure becomes the holder's error line (the
 * action's result is then undefined), so a click never ends in an unhandled rejection.
 */
export async function runShown<T>(holder: { busy: string | null; error: string | null }, label: string, action: () => Promise<T>): Promise<T | undefined> {
  holder.busy = label;
  holder.error = null;
  try {
    return await action();
  } catch (err) {
    holder.error = messageOf(err);
    return undefined;
  } finally {
    holder.busy = null;
  }
}

/**
 * Everything the app shows about one open study: kept while the study is open, so going back
 * to a study brings back its sequence, window, cursor, prediction, chart and exports. A
 * segmentation streams into the state of the study it runs on, whichever study is on screen.
 */
export class StudyState {
  summary = $state.raw<StudySummary>(null as unknown as StudySummary);
  sequence = $state('');
  window = $state<DisplayWindow>({ center: 0, width: 1 });
  volume = $state.raw<VolumeData | null>(null);
  cursor = $state<Vec3>([0, 0, 0]);
  groundTruth = $state.raw<Uint8Array | null>(null);
  prediction = $state.raw<Uint8Array | null>(null);
  overlaySource = $state<OverlaySource>('groundTruth');
  job = $state<JobState | null>(null);
  scores = $state<SliceScore[]>([]);
  exports = $state<ExportRecord[]>([]);
  /** the user's sequence for each model channel ('' = the one the model takes there): substitutes for sequences the study lacks */
  channels = $state<string[]>([]);
  /** the volumes fetched so far, by sequence name */
  readonly volumes = new Map<string, VolumeData>();
  /** whether the ground truth was fetched (it may be absent) */
  groundTruthLoaded = false;
  /** whether the service was asked for a prediction it already holds */
  predictionLoaded = false;
  /** what was said about this study (its assembly, opening it again) and not yet dismissed: shown with it, gone with it */
  notes = $state<string[]>([]);
  /** the edits of the prediction layer: history, live volumes, what is not saved as reviewed yet */
  readonly edits = new LabelEdits();
  /** the last Save as reviewed of this study */
  reviewed = $state.raw<SaveReviewedResult | null>(null);

  constructor(summary: StudySummary) {
    this.summary = summary;
    this.notes = [...(summary.notes ?? [])];
    this.cursor = summary.dims.map((n) => Math.floor(n / 2)) as Vec3;
  }
}
