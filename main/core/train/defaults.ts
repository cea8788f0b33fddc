/**
 * Training defaults of every front end (CLI, app): the official recipe where it has one. A
 * module of its own so that the UI's process can read them without loading the training engine.
 */
export interface LoraOptions {
  rank: number;
  alpha: number;
}

export const LORA_DEFAULTS: LoraOptions = { rank: 8, alpha: 16 };

export const TRAIN_DEFAULTS = {
  epochs: 20,
  batch: 12,
  lr: 1e-3,
  weightDecay: 5e-4,
  size: 352,
  seed: 0,
  emptyRatio: 0.25,
  checkpointEvery: 50,
  loraRank: LORA_DEFAULTS.rank,
  loraAlpha: LORA_DEFAULTS.alpha,
} as const;

/**
 * An empty training slice is an edge slice (data.ts) when its brain cross-section is under this
 * share of the study's largest: the vertex and the skull base, where a slice holds a thin patch of
 * cortex or cerebellum (about the outer 10 mm of a 1 mm study at each end).
 */
export const EDGE_SLICE_AREA = 0.2;
