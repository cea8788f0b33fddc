/**
 * Loading a mask onto the study on screen (a NIfTI label map or a DICOM SEG on the machine running
 * the services), as its editable prediction layer or as its ground truth: the file is inspected
 * first, and a SEG whose segments cannot all be mapped to BraTS labels asks for the missing ones.
 */
import type { MaskInspection, MaskLabel, MaskSource, SegmentationSummary } from '../../../main/core/api.ts';
import { messageOf, type Session } from './session.svelte.ts';

export class MaskLoader {
  readonly #session: Session;
  path = $state('');
  as = $state<MaskSource>('prediction');
  /** the SEG waiting for the user's labels, with its segments */
  inspection = $state.raw<MaskInspection | null>(null);
  /** segment number → label the user chose (0: leave it out) */
  choices = $state<Record<string, MaskLabel>>({});
  notes = $state<string[]>([]);
  error = $state<string | null>(null);
  busy = $state(false);

  constructor(session: Session) {
    this.#session = session;
  }

  /** Every segment has a label (proposed or chosen): the SEG can be loaded. */
  get mapped(): boolean {
    return this.inspection?.segments.every((s) => s.proposed !== null || this.choices[String(s.number)] !== undefined) ?? false;
  }

  pick(file: string): void {
    this.path = file;
    this.inspection = null;
    this.choices = {};
    this.error = null;
  }

  /** Load: inspects the file, then loads it, unless segments need the user's labels first. */
  async load(): Promise<void> {
    const session = this.#session;
    const study = session.study;
    const path = this.path.trim();
    if (!study) return;
    if (!path) {
      this.error = 'type the path of a mask (NIfTI label map or DICOM SEG) first';
      return;
    }
    this.error = null;
    this.notes = [];
    try {
      this.busy = true;
      const inspection = await session.api.inspectMask({ studyId: study.id, path });
      this.inspection = inspection;
      this.choices = Object.fromEntries(inspection.segments.filter((s) => s.proposed !== null).map((s) => [String(s.number), s.proposed!]));
    } catch (err) {
      this.error = messageOf(err);
      return;
    } finally {
      this.busy = false;
    }
    // proposals for every segment: no need to ask
    if (this.inspection.segments.every((s) => s.proposed !== null)) await this.confirm();
  }

  /** Loads the inspected file with the labels chosen (asks before replacing unsaved edits). */
  async confirm(): Promise<void> {
    const session = this.#session;
    const state = session.current;
    const inspection = this.inspection;
    if (!state || !inspection) return;
    if (!this.mapped) {
      this.error = 'choose a label (or "leave out") for every segment';
      return;
    }
    const load = async () => {
      this.busy = true;
      try {
        const segmentLabels = inspection.format === 'dicom-seg' ? { ...this.choices } : undefined;
        const loaded = await session.api.loadMask({ studyId: state.summary.id, path: inspection.path, as: this.as, ...(segmentLabels ? { segmentLabels } : {}) });
        session.applyLoadedMask(state, loaded);
        this.notes = loaded.notes;
        this.inspection = null;
        this.error = null;
      } catch (err) {
        this.error = messageOf(err);
      } finally {
        this.busy = false;
      }
    };
    // loading over the edited layer loses its edits: the user is asked, as when leaving the study
    if (this.as === 'prediction' && state.edits.dirty) await session.whenLeft(state.summary, load, 'Loading a mask to edit replaces the edited one.');
    else await load();
  }

  /** Electron: the native open dialog picks the file (and lets the services read it). */
  async browse(): Promise<void> {
    try {
      const chosen = await this.#session.api.chooseStudyPath({});
      if (chosen) this.pick(chosen.path);
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  cancel(): void {
    this.inspection = null;
    this.choices = {};
  }

  /** A SEG opened by itself whose series is open: that study comes on screen and the SEG is loaded onto it. */
  async loadOnto(seg: SegmentationSummary): Promise<void> {
    const session = this.#session;
    const study = session.studies.find((s) => s.id === seg.openStudyId);
    if (!study) return;
    await session.select(study);
    if (session.study?.id !== study.id) return;
    this.pick(seg.file);
    await this.load();
  }
}
