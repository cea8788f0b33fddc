import { UserError } from '../errors.ts';

/** Hiera trunk configuration, field names as in SAM2's yaml files and the golden manifests. */
export interface HieraConfig {
  embed_dim: number;
  num_heads: number;
  stages: number[];
  global_att_blocks: number[];
  window_pos_embed_bkg_spatial_size: [number, number];
  window_spec: number[];
  q_pool: number;
  q_stride: [number, number];
  dim_mul: number;
  head_mul: number;
}

const common = { q_pool: 3, q_stride: [2, 2] as [number, number], dim_mul: 2, head_mul: 2 };

/** The four SAM2 presets (model.md's table). */
export const HIERA_PRESETS: Record<string, HieraConfig> = {
  hiera_t: { ...common, embed_dim: 96, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] },
  hiera_s: { ...common, embed_dim: 96, num_heads: 1, stages: [1, 2, 11, 2], global_att_blocks: [7, 10, 13], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] },
  'hiera_b+': { ...common, embed_dim: 112, num_heads: 2, stages: [2, 3, 16, 3], global_att_blocks: [12, 16, 20], window_pos_embed_bkg_spatial_size: [14, 14], window_spec: [8, 4, 14, 7] },
  hiera_l: { ...common, embed_dim: 144, num_heads: 2, stages: [2, 6, 36, 4], global_att_blocks: [23, 33, 43], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 16, 8] },
};

/** The SAM2-UNet head around the trunk. */
export interface Sam2UNetConfig {
  trunk: HieraConfig;
  /** output channels of side1, side2 and head: 1 = official binary model, 3 = BraTS WT/TC/ET */
  outChannels: number;
  decoderChannels: number;
  adapterHidden: number;
}

export function sam2UnetConfig(trunk: HieraConfig, outChannels = 1): Sam2UNetConfig {
  return { trunk, outChannels, decoderChannels: 64, adapterHidden: 32 };
}

/** What one Hiera block does, derived once from the configuration (model.md, step 3). */
export interface BlockPlan {
  index: number;
  stage: number;
  dim: number;
  dimOut: number;
  heads: number;
  /** 0 = global attention */
  window: number;
  /** true in the first block of stages 2, 3 and 4 (up to q_pool of them) */
  poolQuery: boolean;
  /** true for the last block of a stage: its output is a feature map */
  stageEnd: boolean;
}

export function blockPlan(config: HieraConfig): BlockPlan[] {
  const depth = config.stages.reduce((a, b) => a + b, 0);
  const stageEnds = config.stages.map((_, i) => config.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  // q_pool blocks are the first blocks of stages 2.. (the block after each stage end, except the last)
  const qPoolBlocks = stageEnds.slice(0, -1).map((end) => end + 1).slice(0, config.q_pool);
  const plans: BlockPlan[] = [];
  let dim = config.embed_dim;
  let heads = config.num_heads;
  let stage = 1;
  for (let i = 0; i < depth; i++) {
    let dimOut = dim;
    // the window comes from the stage the previous block was in (SAM2's lag-by-one rule)
    let window = config.window_spec[stage - 1]!;
    if (config.global_att_blocks.includes(i)) window = 0;
    if (i - 1 >= 0 && stageEnds.includes(i - 1)) {
      dimOut = Math.trunc(dim * config.dim_mul);
      heads = Math.trunc(heads * config.head_mul);
      stage += 1;
    }
    plans.push({ index: i, stage, dim, dimOut, heads, window, poolQuery: qPoolBlocks.includes(i), stageEnd: stageEnds.includes(i) });
    dim = dimOut;
  }
  return plans;
}

/** Channels of the four feature maps. */
export function featureChannels(config: HieraConfig): number[] {
  return blockPlan(config).filter((b) => b.stageEnd).map((b) => b.dimOut);
}

const numberList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));

/**
 * Accepts a preset name, or an object with the Hiera fields at top level or under `config` or
 * `trunk_config` (so the golden manifest.json files work as they are). Missing fields take
 * hiera_t's values only for the fields that every preset shares.
 */
export function parseHieraConfig(value: unknown, origin = 'configuration'): HieraConfig {
  if (typeof value === 'string') {
    const preset = HIERA_PRESETS[value];
    if (!preset) throw new UserError(`unknown preset "${value}" in ${origin}; choose one of ${Object.keys(HIERA_PRESETS).join(', ')}`);
    return structuredClone(preset);
  }
  if (!value || typeof value !== 'object') throw new UserError(`${origin}: expected a preset name or a JSON object`);
  let obj = value as Record<string, unknown>;
  if (obj.trunk_config && typeof obj.trunk_config === 'object') obj = obj.trunk_config as Record<string, unknown>;
  else if (obj.config && typeof obj.config === 'object') obj = obj.config as Record<string, unknown>;
  const need = (key: string): unknown => {
    if (!(key in obj)) throw new UserError(`${origin}: missing Hiera field "${key}"`);
    return obj[key];
  };
  const int = (key: string, fallback?: number): number => {
    const v = key in obj || fallback === undefined ? need(key) : fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new UserError(`${origin}: "${key}" must be a non-negative integer`);
    return v;
  };
  const list = (key: string, length?: number, fallback?: number[]): number[] => {
    const v = key in obj || fallback === undefined ? need(key) : fallback;
    if (!numberList(v) || (length !== undefined && v.length !== length)) {
      throw new UserError(`${origin}: "${key}" must be a list of ${length ?? 'some'} numbers`);
    }
    return v;
  };
  const stages = list('stages', 4);
  const config: HieraConfig = {
    embed_dim: int('embed_dim'),
    num_heads: int('num_heads'),
    stages,
    global_att_blocks: list('global_att_blocks'),
    window_pos_embed_bkg_spatial_size: list('window_pos_embed_bkg_spatial_size', 2) as [number, number],
    window_spec: list('window_spec', 4),
    q_pool: int('q_pool', common.q_pool),
    q_stride: list('q_stride', 2, common.q_stride) as [number, number],
    dim_mul: typeof obj.dim_mul === 'number' ? obj.dim_mul : common.dim_mul,
    head_mul: typeof obj.head_mul === 'number' ? obj.head_mul : common.head_mul,
  };
  if (config.embed_dim === 0 || config.num_heads === 0) throw new UserError(`${origin}: embed_dim and num_heads must be positive`);
  if (config.q_stride[0] !== 2 || config.q_stride[1] !== 2) throw new UserError(`${origin}: only q_stride [2, 2] is supported`);
  const depth = stages.reduce((a, b) => a + b, 0);
  if (config.global_att_blocks.some((b) => b >= depth)) throw new UserError(`${origin}: global_att_blocks beyond the ${depth} blocks`);
  for (const p of blockPlan(config)) {
    if (p.dimOut % p.heads !== 0) throw new UserError(`${origin}: block ${p.index} has ${p.dimOut} channels for ${p.heads} heads`);
  }
  return config;
}

export function presetName(config: HieraConfig): string | undefined {
  return Object.entries(HIERA_PRESETS).find(([, preset]) => JSON.stringify(preset) === JSON.stringify(config))?.[0];
}
