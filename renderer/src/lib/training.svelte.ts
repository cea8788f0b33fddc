/**
 * Fine-tuning from the workstation: the request being edited, the earlier runs (to resume), and
 * the live curves of the running job from its trainStart/trainStep/trainValidation/trainDone
 * events. A finished run's model is added to the session's model list and selected.
 */
import type { ApiEvent, ClientApi, HeldOutComparison, ReviewedStudy, TrainRequest, TrainStrategy, TrainingRun } from '../../../main/core/api.ts';
import { autoSplit, type ReviewRole } from './review-split.ts';

export type { ReviewRole };
import { messageOf } from './session.svelte.ts';
import type { Session } from './session.svelte.ts';

export interface CurvePoint {
  step: number;
  value: number;
}

export interface TrainingJob {
  id: string;
  run: string;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  step: number;
  totalSteps: number;
  resumedFrom: number;
  etaSeconds?: number;
  imagesPerSecond?: number;
  message?: string;
  /** the run's time budget, when it has one (its steps are then only a bound) */
  budgetSeconds?: number;
}

/** The editable form, as the panel binds it (numbers as the inputs give them). */
export interface TrainForm {
  data: string;
  val: string;
  strategy: TrainStrategy;
  epochs: number;
  steps: number | null;
  batch: number;
  lr: number;
  size: number | null;
  loraRank: number;
  loraAlpha: number;
  name: string;
}

const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter(Boolean);

export class Training {
  readonly #api: ClientApi;
  readonly #session: Session;
  form = $state<TrainForm>({ data: '', val: '', strategy: 'adapter', epochs: 1, steps: null, batch: 4, lr: 1e-4, size: null, loraRank: 8, loraAlpha: 16, name: '' });
  runs = $state<TrainingRun[]>([]);
  job = $state<TrainingJob | null>(null);
  loss = $state<CurvePoint[]>([]);
  /** validation Dice per region, one point per validation */
  validation = $state<Record<string, CurvePoint[]>>({});
  error = $state<string | null>(null);
  /** the panel is folded away until asked for (menu Train, or a click) */
  panelOpen = $state(false);
  /** the studies saved as reviewed, and what each is in the next run */
  reviewed = $state<ReviewedStudy[]>([]);
  roles = $state<Record<string, ReviewRole>>({});
  /** the fine-tuning run's time budget in seconds */
  budgetSeconds = $state(300);
  /** the last fine-tuning on reviewed studies: held-out Dice before and after, and the two models */
  comparison = $state.raw<{ heldOut: HeldOutComparison; baseModel: string; trainedModel: string } | null>(null);
  #reviewRun: { baseModel: string } | null = null;

  constructor(api: ClientApi, session: Session) {
    this.#api = api;
    this.#session = session;
    api.onEvent((event) => this.#onEvent(event));
  }

  get running(): boolean {
    return this.job?.status === 'running';
  }

  /** Lists the reviewed studies; new ones get roles from the automatic split, the user's choices stay. */
  async refreshReviewed(): Promise<void> {
    try {
      this.reviewed = await this.#api.listReviewed({});
    } catch {
      this.reviewed = [];
    }
    const auto = autoSplit(this.reviewed);
    const kept = Object.fromEntries(Object.entries(this.roles).filter(([name]) => name in auto));
    this.roles = { ...auto, ...kept };
  }

  /** Back to the automatic split. */
  splitAutomatically(): void {
    this.roles = autoSplit(this.reviewed);
  }

  /**
   * Fine-tunes the model on the reviewed studies marked 'train', from the model selected for
   * segmentation, within the time budget; the held-out ones are scored before and after.
   */
  async startReviewed(): Promise<void> {
    // in name order: the run (and its provenance) lists the studies the same way each time
    const dirs = (role: ReviewRole) => this.reviewed.filter((s) => this.roles[s.name] === role).sort((a, b) => a.name.localeCompare(b.name)).map((s) => s.dir);
    const data = dirs('train');
    const heldOut = dirs('heldOut');
    if (!data.length || !heldOut.length) {
      this.error = 'mark at least one reviewed study to train on and one to hold out (the held-out Dice shows whether the run helped)';
      return;
    }
    const f = this.form;
    const base = this.#session.model;
    const request: TrainRequest = {
      data,
      heldOut,
      strategy: f.strategy,
      ...(base ? { model: base } : {}),
      maxSeconds: this.budgetSeconds,
      batch: f.batch,
      lr: f.lr,
      ...(f.size ? { size: f.size } : {}),
      ...(f.strategy === 'lora' ? { loraRank: f.loraRank, loraAlpha: f.loraAlpha } : {}),
      ...(f.name.trim() ? { name: f.name.trim() } : {}),
    };
    this.comparison = null;
    this.#reviewRun = { baseModel: base || (this.#session.models.find((m) => m.kind === 'bundled')?.id ?? '') };
    await this.#begin(request);
    if (!this.running) this.#reviewRun = null;
  }

  /** Puts a model of the comparison to use for segmentation. */
  useModel(id: string): void {
    this.#session.model = id;
  }

  async refreshRuns(): Promise<void> {
    try {
      this.runs = await this.#api.listTrainingRuns({});
    } catch {
      this.runs = [];
    }
  }

  /** Adds the open study's folder to the training data (the usual first step). */
  addOpenStudy(): void {
    const source = this.#session.study?.source;
    if (source && !lines(this.form.data).includes(source)) this.form.data = [...lines(this.form.data), source].join('\n');
  }

  request(resume?: TrainingRun): TrainRequest {
    const f = this.form;
    const val = lines(f.val);
    const model = this.#session.model;
    return {
      data: lines(f.data),
      strategy: f.strategy,
      ...(val.length ? { val } : {}),
      ...(model ? { model } : {}),
      ...(f.steps ? { steps: f.steps } : { epochs: f.epochs }),
      batch: f.batch,
      lr: f.lr,
      ...(f.size ? { size: f.size } : {}),
      ...(f.strategy === 'lora' ? { loraRank: f.loraRank, loraAlpha: f.loraAlpha } : {}),
      ...(resume ? { name: resume.name, resume: true } : f.name.trim() ? { name: f.name.trim() } : {}),
    };
  }

  async start(resume?: TrainingRun): Promise<void> {
    const request = this.request(resume);
    if (request.data.length === 0) {
      this.error = 'add at least one labelled study folder to train on';
      return;
    }
    this.#reviewRun = null;
    await this.#begin(request, resume);
  }

  async #begin(request: TrainRequest, resume?: TrainingRun): Promise<void> {
    this.error = null;
    try {
      const started = await this.#api.train(request);
      // the job's events follow this reply on the one channel (main/core/rpc/channel.ts)
      this.loss = [];
      this.validation = {};
      this.job = { id: started.jobId, run: resume?.name ?? request.name ?? '', status: 'running', step: resume?.step ?? 0, totalSteps: 0, resumedFrom: resume?.step ?? 0, ...(request.maxSeconds ? { budgetSeconds: request.maxSeconds } : {}) };
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.status !== 'running') return;
    try {
      await this.#api.cancel({ jobId: job.id });
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  #onEvent(received: ApiEvent): void {
    const job = this.job;
    if (!job || received.type === 'menu' || received.jobId !== job.id) return;
    const event = received;
    switch (event.type) {
      case 'trainStart':
        this.job = { ...job, run: event.run, totalSteps: event.totalSteps, resumedFrom: event.resumedFrom, step: event.resumedFrom };
        break;
      case 'progress':
        if (event.message) this.job = { ...job, message: event.message };
        break;
      case 'trainStep':
        this.loss = [...this.loss, { step: event.step, value: event.loss }];
        this.job = { ...job, step: event.step, totalSteps: event.totalSteps, etaSeconds: event.etaSeconds, imagesPerSecond: event.imagesPerSecond };
        break;
      case 'trainValidation': {
        const next = { ...this.validation };
        for (const [region, dice] of Object.entries(event.dice)) next[region] = [...(next[region] ?? []), { step: event.step, value: dice }];
        this.validation = next;
        break;
      }
      case 'trainDone':
        this.job = { ...job, status: 'done', step: event.steps };
        if (event.heldOut && this.#reviewRun) this.comparison = { heldOut: event.heldOut, baseModel: this.#reviewRun.baseModel, trainedModel: event.model.id };
        this.#reviewRun = null;
        void this.#session.refreshModels().then(() => {
          if (!this.#session.models.some((m) => m.id === event.model.id)) this.#session.models = [...this.#session.models, event.model];
          this.#session.model = event.model.id;
        });
        void this.refreshRuns();
        break;
      case 'failed':
        this.#reviewRun = null;
        this.job = { ...job, status: 'failed', message: event.message };
        this.error = `training failed: ${event.message}`;
        void this.refreshRuns();
        break;
      case 'cancelled':
        this.#reviewRun = null;
        this.job = { ...job, status: 'cancelled' };
        void this.refreshRuns();
        break;
    }
  }
}
