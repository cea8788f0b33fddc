/**
 * Running the cases of a cohort, one at a time, with one model kept loaded: what the
 * single-machine run, a queue worker and the app's "Segment all" share. A case is skipped when
 * its outputs are complete and its study, model and settings are unchanged (record.ts); a
 * case is written under a temporary name and put in place whole (util/fs.ts replaceDirectory);
 * a failure is recorded, never left half-written.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CancelledError, UserError, errorMessage } from '../errors.ts';
import type { CheckpointModel } from '../jobs/model.ts';
import type { SegmentEvents } from '../jobs/segment.ts';
import type { PostprocessOptions } from '../model/postprocess.ts';
import { writeFileAtomic, replaceDirectory } from '../util/fs.ts';
import type { CohortCase } from './find.ts';
import { hashFile, hashStudyInputs } from './hash.ts';
import {
  CASE_RECORD,
  caseDir,
  clearFailure,
  figuresOf,
  partialDir,
  readCompleteRecord,
  removeStalePartials,
  sameRun,
  workerName,
  writeFailure,
  type CaseRecord,
  type FailureRecord,
  type RunFingerprint,
} from './record.ts';
import { chooseModel, loadModel, prepareStudy, runStudy, type ModelChoice, type ModelRequest } from './study-run.ts';
import { describeMapping, type ChannelMapping } from '../model/run-settings.ts';

/** How every study of a cohort is run: the same model and settings for all. */
export interface CohortRunSettings {
  model: ModelRequest;
  /** the study sequences fed to the model's channels (one name feeds all); default the model's own */
  channels?: string[];
  batch?: number;
  postprocess: PostprocessOptions;
  /** also write a DICOM SEG for the DICOM studies */
  dicomSeg?: boolean;
}

export interface CaseRunnerOptions {
  onNote?: (note: string) => void;
  /** the model starts loading (the first case that needs it) */
  onModelLoading?: (choice: ModelChoice) => void;
  onModelReady?: (model: CheckpointModel) => void;
  /** how a missing sequence may be substituted, in the front end's words (default: the CLI's --channels) */
  substituteHint?: (mapping: ChannelMapping, sequences: string[]) => string;
  /** who runs the cases, in their records (default host:pid; a queue worker's --name) */
  workerName?: string;
}

/** A case's failure: thrown by CaseRunner.run after the failure is recorded. */
export class CaseFailedError extends Error {
  override name = 'CaseFailedError';
  readonly failure: FailureRecord;
  override readonly cause: unknown;
  constructor(failure: FailureRecord, cause: unknown) {
    super(failure.error);
    this.failure = failure;
    this.cause = cause;
  }
}

/** The errors that come from the study itself: running it again fails the same way (not retried). */
export function isDataError(err: unknown): boolean {
  return err instanceof UserError || (err instanceof Error && (err.name === 'UserError' || err.name === 'FileError'));
}

/** What runs cases: a CaseRunner in this thread, or a CohortThread (thread-client.ts) in a worker thread. */
export interface CaseExecutor {
  readonly choice: ModelChoice;
  readonly fingerprint: RunFingerprint;
  upToDate(entry: CohortCase, out: string): Promise<{ record: CaseRecord | null; inputHash: string }>;
  run(entry: CohortCase, out: string, opts?: CaseRunOptions): Promise<CaseRecord>;
}

export interface CaseRunOptions {
  signal?: AbortSignal;
  /** the study's hash when known already (upToDate computed it) */
  inputHash?: string;
  /** slices of the case segmented so far */
  onSlice?: (done: number, total: number) => void;
}

export class CaseRunner implements CaseExecutor {
  readonly settings: CohortRunSettings;
  readonly choice: ModelChoice;
  readonly fingerprint: RunFingerprint;
  readonly #options: CaseRunnerOptions;
  #model?: Promise<CheckpointModel>;

  private constructor(settings: CohortRunSettings, choice: ModelChoice, fingerprint: RunFingerprint, options: CaseRunnerOptions) {
    this.settings = settings;
    this.choice = choice;
    this.fingerprint = fingerprint;
    this.#options = options;
  }

  /** Chooses the model and hashes it; the model itself is loaded by the first case that needs it. */
  static async create(settings: CohortRunSettings, options: CaseRunnerOptions = {}): Promise<CaseRunner> {
    const choice = await chooseModel(settings.model);
    const fingerprint: RunFingerprint = {
      model_hash: await hashFile(choice.checkpoint),
      size: [...choice.expected.size] as [number, number],
      channels: [...choice.expected.channels],
      regions: choice.expected.regions,
      tta: choice.expected.tta,
      channels_chosen: settings.channels ?? [],
      config: choice.config ?? choice.bundled?.config ?? null,
      postprocess: { minComponentMl: settings.postprocess.minComponentMl, minEtMl: settings.postprocess.minEtMl },
      dicom_seg: settings.dicomSeg === true,
    };
    return new CaseRunner(settings, choice, fingerprint, options);
  }

  /** The loaded model (loaded once, kept for every later case). */
  model(): Promise<CheckpointModel> {
    if (!this.#model) {
      this.#options.onModelLoading?.(this.choice);
      this.#model = loadModel(this.choice, this.#options.onNote).then((model) => {
        this.#options.onModelReady?.(model);
        return model;
      });
      // a failed load is tried again by the next case
      this.#model.catch(() => (this.#model = undefined));
    }
    return this.#model;
  }

  get modelLoaded(): boolean {
    return this.#model !== undefined;
  }

  /** The case's record when it need not run again (complete outputs, same study, model and settings), with the study's hash. */
  async upToDate(entry: CohortCase, out: string): Promise<{ record: CaseRecord | null; inputHash: string }> {
    const { hash } = await hashStudyInputs(entry.path);
    const record = await readCompleteRecord(out, entry.name);
    const current = record && record.input_hash === hash && record.run && sameRun(record.run, this.fingerprint) ? record : null;
    return { record: current, inputHash: hash };
  }

  /**
   * Segments one case into `<out>/<case>/`. Returns its record; throws CaseFailedError (recorded
   * in `<out>/.cohort/failed/`) or CancelledError (nothing recorded, nothing left behind).
   */
  async run(entry: CohortCase, out: string, opts: CaseRunOptions = {}): Promise<CaseRecord> {
    const started = performance.now();
    let inputHash: string | null = opts.inputHash ?? null;
    const temp = partialDir(out, entry.name);
    // a model that cannot load is not this case's failure: it goes to the caller as it is
    let loadingModel = false;
    try {
      inputHash ??= (await hashStudyInputs(entry.path)).hash;
      const prepared = await prepareStudy(entry.path, this.choice.expected, {
        channels: this.settings.channels,
        onNote: this.#options.onNote,
        ...(this.#options.substituteHint ? { substituteHint: this.#options.substituteHint } : {}),
      });
      const dicomSeg = this.settings.dicomSeg === true && prepared.study.kind === 'dicom';
      loadingModel = true;
      const model = await this.model();
      loadingModel = false;
      if (opts.signal?.aborted) throw new CancelledError();
      await mkdir(temp, { recursive: true });
      let done = 0;
      let total = 0;
      const events: SegmentEvents = { start: (info) => (total = info.slices), slice: () => opts.onSlice?.(++done, total) };
      const outcome = await runStudy(prepared, model, temp, { batch: this.settings.batch, postprocess: this.settings.postprocess, dicomSeg, signal: opts.signal }, events);
      const notes = [...outcome.notes];
      if (this.settings.dicomSeg && !dicomSeg) notes.push(`no DICOM SEG written: ${entry.name} is not a DICOM study`);
      const files = await Promise.all(outcome.files.map(async (file) => ({ name: relative(temp, file), bytes: (await stat(file)).size })));
      const record: CaseRecord = {
        case: entry.name,
        study: prepared.study.name,
        source: entry.path,
        kind: prepared.study.kind,
        sequences_found: Object.keys(prepared.study.sequences),
        sequences_used: [...prepared.channelNames],
        channels: describeMapping(prepared.mapping),
        ground_truth: prepared.groundTruth !== null,
        ...figuresOf(outcome.report),
        model: this.choice.name,
        checkpoint: this.choice.checkpoint,
        preset: outcome.report.settings.preset,
        device: outcome.summary.provider,
        input_hash: inputHash,
        run: this.fingerprint,
        notes,
        seconds: +((performance.now() - started) / 1000).toFixed(3),
        finished_at: new Date().toISOString(),
        files,
        worker: this.#options.workerName ?? workerName(),
      };
      await writeFileAtomic(join(temp, CASE_RECORD), `${JSON.stringify(record, null, 1)}\n`);
      await removeStalePartials(out, entry.name);
      await replaceDirectory(temp, caseDir(out, entry.name));
      await clearFailure(out, entry.name);
      return record;
    } catch (err) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof CancelledError || opts.signal?.aborted) throw new CancelledError();
      if (loadingModel) throw err;
      const failure: FailureRecord = {
        case: entry.name,
        source: entry.path,
        error: errorMessage(err),
        data_error: isDataError(err),
        input_hash: inputHash,
        run: this.fingerprint,
        seconds: +((performance.now() - started) / 1000).toFixed(3),
        finished_at: new Date().toISOString(),
        worker: this.#options.workerName ?? workerName(),
      };
      await writeFailure(out, failure);
      throw new CaseFailedError(failure, err);
    }
  }

  async dispose(): Promise<void> {
    const model = this.#model;
    this.#model = undefined;
    if (model) await (await model.catch(() => null))?.dispose();
  }
}
