/**
 * The state_dict layouts of the Hiera trunk and of SAM2-UNet (model.md), derived from the
 * configuration: every key with its shape, the mapping between SAM2 and SAM2-UNet names, validation
 * of loaded weights, detection of the configuration from tensor shapes, and parameter counts.
 * This is the one place that knows key names; the model builder and the checkpoint readers use it.
 */
import { FileError } from '../errors.ts';
import { blockPlan, featureChannels, HIERA_PRESETS, type HieraConfig } from './config.ts';
import { numel, type StateDict } from './tensor.ts';

export const DECODER_CHANNELS = 64;
export const ADAPTER_HIDDEN = 32;
export const MLP_RATIO = 4;
/** Prefix of the trunk keys in SAM2 checkpoints (`sam2_hiera_*.pt`). */
export const SAM2_TRUNK_PREFIX = 'image_encoder.trunk.';
/** Prefix of the trunk keys in SAM2-UNet checkpoints. */
export const SAM2UNET_ENCODER_PREFIX = 'encoder.';

export type KeyGroup = 'trunk' | 'adapter' | 'decoder' | 'up4';

export interface KeySpec {
  key: string;
  shape: number[];
  /** buffers (BatchNorm running statistics) are state, not parameters */
  buffer: boolean;
  group: KeyGroup;
}

// ---------------------------------------------------------------- key names

/** Block-relative key names of Hiera block `index` ("attn.qkv.weight" → "blocks.3.attn.qkv.weight"). */
export const trunkBlockKey = (index: number, key: string): string => `blocks.${index}.${key}`;

/** A trunk key (`pos_embed`, `blocks.3.attn.qkv.weight`) as SAM2-UNet names it. */
export function trunkKeyToSam2UNet(trunkKey: string): string {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(trunkKey);
  return m ? `${SAM2UNET_ENCODER_PREFIX}blocks.${m[1]}.block.${m[2]}` : SAM2UNET_ENCODER_PREFIX + trunkKey;
}

/** The inverse of trunkKeyToSam2UNet; undefined for keys that are not trunk keys (adapters, decoder). */
export function sam2UNetKeyToTrunk(key: string): string | undefined {
  if (!key.startsWith(SAM2UNET_ENCODER_PREFIX)) return undefined;
  const rest = key.slice(SAM2UNET_ENCODER_PREFIX.length);
  const m = /^blocks\.(\d+)\.(.+)$/.exec(rest);
  if (!m) return rest;
  if (!m[2]!.startsWith('block.')) return undefined; // prompt_learn = adapter
  return `blocks.${m[1]}.${m[2]!.slice('block.'.length)}`;
}

/** Adapter Linear of block `index`: `layer` 0 = Linear(dim→32), 2 = Linear(32→dim). */
export const adapterLayer = (index: number, layer: 0 | 2): string => `${SAM2UNET_ENCODER_PREFIX}blocks.${index}.prompt_learn.${layer}`;

export const adapterKey = (index: number, layer: 0 | 2, param: 'weight' | 'bias'): string => `${adapterLayer(index, layer)}.${param}`;

/** Where a trunk's weights live in a state dict: bare trunk keys, or SAM2-UNet's `encoder.` layout. */
export interface TrunkKeys {
  trunk(key: string): string;
  block(index: number, key: string): string;
  /** the adapter Linear of block `index` (its key without .weight/.bias); absent when the model has no adapters */
  adapter?(index: number, layer: 0 | 2): string;
}

export const BARE_TRUNK_KEYS: TrunkKeys = {
  trunk: (key) => key,
  block: trunkBlockKey,
};

export const SAM2UNET_ENCODER_KEYS: TrunkKeys = {
  trunk: trunkKeyToSam2UNet,
  block: (i, key) => trunkKeyToSam2UNet(trunkBlockKey(i, key)),
  adapter: adapterLayer,
};

// ---------------------------------------------------------------- expected layouts

/** Trunk keys (without any prefix) with shapes, in the module's state_dict order. */
export function expectedTrunkKeys(config: HieraConfig): KeySpec[] {
  const C = config.embed_dim;
  const w0 = config.window_spec[0]!;
  const [bh, bw] = config.window_pos_embed_bkg_spatial_size;
  const specs: KeySpec[] = [];
  const add = (key: string, shape: number[]) => specs.push({ key, shape, buffer: false, group: 'trunk' });
  add('pos_embed', [1, C, bh, bw]);
  add('pos_embed_window', [1, C, w0, w0]);
  add('patch_embed.proj.weight', [C, 3, 7, 7]);
  add('patch_embed.proj.bias', [C]);
  for (const b of blockPlan(config)) {
    const k = (key: string) => trunkBlockKey(b.index, key);
    const { dim, dimOut } = b;
    add(k('norm1.weight'), [dim]);
    add(k('norm1.bias'), [dim]);
    add(k('attn.qkv.weight'), [3 * dimOut, dim]);
    add(k('attn.qkv.bias'), [3 * dimOut]);
    add(k('attn.proj.weight'), [dimOut, dimOut]);
    add(k('attn.proj.bias'), [dimOut]);
    add(k('norm2.weight'), [dimOut]);
    add(k('norm2.bias'), [dimOut]);
    add(k('mlp.layers.0.weight'), [MLP_RATIO * dimOut, dimOut]);
    add(k('mlp.layers.0.bias'), [MLP_RATIO * dimOut]);
    add(k('mlp.layers.1.weight'), [dimOut, MLP_RATIO * dimOut]);
    add(k('mlp.layers.1.bias'), [dimOut]);
    if (dim !== dimOut) {
      add(k('proj.weight'), [dimOut, dim]);
      add(k('proj.bias'), [dimOut]);
    }
  }
  return specs;
}

function basicConv(specs: KeySpec[], prefix: string, cin: number, cout: number, kh: number, kw: number, group: KeyGroup): void {
  specs.push({ key: `${prefix}.conv.weight`, shape: [cout, cin, kh, kw], buffer: false, group });
  batchNorm(specs, `${prefix}.bn`, cout, group);
}

function batchNorm(specs: KeySpec[], prefix: string, channels: number, group: KeyGroup): void {
  specs.push({ key: `${prefix}.weight`, shape: [channels], buffer: false, group });
  specs.push({ key: `${prefix}.bias`, shape: [channels], buffer: false, group });
  specs.push({ key: `${prefix}.running_mean`, shape: [channels], buffer: true, group });
  specs.push({ key: `${prefix}.running_var`, shape: [channels], buffer: true, group });
  specs.push({ key: `${prefix}.num_batches_tracked`, shape: [], buffer: true, group });
}

export interface Sam2UNetLayout {
  decoderChannels?: number;
  adapterHidden?: number;
}

/**
 * Every SAM2-UNet key with its shape, in the official module's state_dict order: the encoder (trunk
 * keys renamed, each block followed by its adapter), rfb1..4, up1..4 (up4 exists but is never used),
 * side1, side2, head. BatchNorm buffers included.
 */
export function expectedSam2UNetKeys(config: HieraConfig, outChannels = 1, layout: Sam2UNetLayout = {}): KeySpec[] {
  const D = layout.decoderChannels ?? DECODER_CHANNELS;
  const H = layout.adapterHidden ?? ADAPTER_HIDDEN;
  const specs: KeySpec[] = [];
  const trunk = expectedTrunkKeys(config);
  const plans = blockPlan(config);
  let blockIndex = -1;
  const flushAdapter = (index: number) => {
    const dim = plans[index]!.dim;
    specs.push({ key: adapterKey(index, 0, 'weight'), shape: [H, dim], buffer: false, group: 'adapter' });
    specs.push({ key: adapterKey(index, 0, 'bias'), shape: [H], buffer: false, group: 'adapter' });
    specs.push({ key: adapterKey(index, 2, 'weight'), shape: [dim, H], buffer: false, group: 'adapter' });
    specs.push({ key: adapterKey(index, 2, 'bias'), shape: [dim], buffer: false, group: 'adapter' });
  };
  for (const spec of trunk) {
    const m = /^blocks\.(\d+)\./.exec(spec.key);
    const index = m ? Number(m[1]) : -1;
    if (index !== blockIndex && blockIndex >= 0) flushAdapter(blockIndex);
    blockIndex = index;
    specs.push({ ...spec, key: trunkKeyToSam2UNet(spec.key) });
  }
  if (blockIndex >= 0) flushAdapter(blockIndex);
  featureChannels(config).forEach((cin, i) => {
    const p = `rfb${i + 1}`;
    basicConv(specs, `${p}.branch0.0`, cin, D, 1, 1, 'decoder');
    for (const [branch, k] of [[1, 3], [2, 5], [3, 7]] as const) {
      basicConv(specs, `${p}.branch${branch}.0`, cin, D, 1, 1, 'decoder');
      basicConv(specs, `${p}.branch${branch}.1`, D, D, 1, k, 'decoder');
      basicConv(specs, `${p}.branch${branch}.2`, D, D, k, 1, 'decoder');
      basicConv(specs, `${p}.branch${branch}.3`, D, D, 3, 3, 'decoder');
    }
    basicConv(specs, `${p}.conv_cat`, 4 * D, D, 3, 3, 'decoder');
    basicConv(specs, `${p}.conv_res`, cin, D, 1, 1, 'decoder');
  });
  for (let u = 1; u <= 4; u++) {
    const group: KeyGroup = u === 4 ? 'up4' : 'decoder';
    const p = `up${u}.conv.double_conv`;
    // Up(128, 64): DoubleConv(128 → mid 64 → 64), convs without bias
    specs.push({ key: `${p}.0.weight`, shape: [D, 2 * D, 3, 3], buffer: false, group });
    batchNorm(specs, `${p}.1`, D, group);
    specs.push({ key: `${p}.3.weight`, shape: [D, D, 3, 3], buffer: false, group });
    batchNorm(specs, `${p}.4`, D, group);
  }
  for (const name of ['side1', 'side2', 'head']) {
    specs.push({ key: `${name}.weight`, shape: [outChannels, D, 1, 1], buffer: false, group: 'decoder' });
    specs.push({ key: `${name}.bias`, shape: [outChannels], buffer: false, group: 'decoder' });
  }
  return specs;
}

// ---------------------------------------------------------------- validation

export interface ValidateOptions {
  /** keys in `weights` not in `expected` are tolerated (returned) instead of refused */
  allowUnexpected?: boolean;
  /** BatchNorm `num_batches_tracked` may be absent (safetensors exports often drop it) */
  allowMissingBatchCounters?: boolean;
}

const MAX_LISTED = 5;

function listSome(items: string[]): string {
  const shown = items.slice(0, MAX_LISTED).join('; ');
  return items.length > MAX_LISTED ? `${shown}; … (${items.length} in all)` : shown;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Checks that `weights` holds exactly the `expected` keys with the expected shapes; throws a FileError
 * naming `origin` and up to five offending keys per kind of problem. Returns the unexpected keys
 * when they are allowed.
 */
export function validateStateDict(weights: StateDict, expected: readonly KeySpec[], origin: string, options: ValidateOptions = {}): { unexpected: string[] } {
  const wanted = new Map(expected.map((s) => [s.key, s]));
  const missing: string[] = [];
  const misshapen: string[] = [];
  for (const spec of expected) {
    const t = weights.get(spec.key);
    if (!t) {
      if (!(options.allowMissingBatchCounters && spec.key.endsWith('.num_batches_tracked'))) missing.push(spec.key);
      continue;
    }
    const same = t.shape.length === spec.shape.length && t.shape.every((d, i) => d === spec.shape[i]);
    // a 0-d scalar and a 1-element vector are the same value (some exporters write num_batches_tracked as [1])
    const scalarAlike = spec.shape.length === 0 && numel(t.shape) === 1;
    if (!same && !scalarAlike) misshapen.push(`${spec.key}: expected ${fmt(spec.shape)}, found ${fmt(t.shape)}`);
  }
  const unexpected = [...weights.keys()].filter((k) => !wanted.has(k));
  const problems: string[] = [];
  if (misshapen.length) problems.push(`${misshapen.length} tensor(s) with the wrong shape (${listSome(misshapen)})`);
  if (missing.length) problems.push(`${missing.length} missing key(s) (${listSome(missing)})`);
  if (unexpected.length && !options.allowUnexpected) problems.push(`${unexpected.length} unexpected key(s) (${listSome(unexpected)})`);
  if (problems.length) throw new FileError(origin, `weights do not match the model: ${problems.join('; ')}`);
  return { unexpected };
}

// ---------------------------------------------------------------- configuration detection

/**
 * Recovers the Hiera configuration from trunk weights (keys without prefix). embed_dim, the stages
 * (stage boundaries are the blocks with a `proj`, i.e. those that change dim) and the
 * positional-embedding sizes come from shapes. Heads, global-attention blocks and window sizes
 * cannot be seen in shapes: they come from the preset with the same stages (the presets' stages are
 * all different); with no such preset, an error asks for --config. The caller still validates every
 * shape against expectedTrunkKeys(result).
 */
export function detectHieraConfig(weights: StateDict, origin: string): HieraConfig {
  const fail = (problem: string): never => {
    throw new FileError(origin, problem);
  };
  const patch = weights.get('patch_embed.proj.weight');
  if (!patch || patch.shape.length !== 4 || patch.shape[1] !== 3) fail('no Hiera trunk: patch_embed.proj.weight of shape [C, 3, 7, 7] is missing');
  const embedDim = patch!.shape[0]!;
  let depth = 0;
  while (weights.has(trunkBlockKey(depth, 'attn.qkv.weight'))) depth++;
  if (depth === 0) fail('no Hiera trunk: blocks.0.attn.qkv.weight is missing');
  const changing: number[] = [];
  for (let i = 0; i < depth; i++) if (weights.has(trunkBlockKey(i, 'proj.weight'))) changing.push(i);
  if (changing.length !== 3) fail(`a Hiera trunk has 3 dim-changing blocks (with blocks.N.proj.weight), found ${changing.length} among ${depth} blocks: pass --config`);
  const bounds = [0, ...changing, depth];
  const stages = bounds.slice(1).map((end, i) => end - bounds[i]!);
  if (stages[0] === 0) fail('block 0 cannot change dim (it has blocks.0.proj.weight)');
  const pos = weights.get('pos_embed');
  const win = weights.get('pos_embed_window');
  if (!pos || pos.shape.length !== 4) fail('pos_embed of shape [1, C, h, w] is missing');
  if (!win || win.shape.length !== 4) fail('pos_embed_window of shape [1, C, w, w] is missing');
  const entry = Object.entries(HIERA_PRESETS).find(([, c]) => c.stages.join() === stages.join());
  if (!entry) {
    fail(`trunk with stages [${stages.join(', ')}] (embed_dim ${embedDim}) matches no preset; heads, windows and global-attention blocks cannot be read from the weights: pass --config`);
  }
  const [name, preset] = entry!;
  const window0 = win!.shape[2]!;
  if (preset.window_spec[0] !== window0) fail(`pos_embed_window is ${window0}×${window0} but ${name}'s first window is ${preset.window_spec[0]}: pass --config`);
  const config: HieraConfig = { ...structuredClone(preset), embed_dim: embedDim, window_pos_embed_bkg_spatial_size: [pos!.shape[2]!, pos!.shape[3]!] };
  for (const p of blockPlan(config)) {
    if (p.dimOut % p.heads !== 0) fail(`embed_dim ${embedDim} with ${name}'s ${config.num_heads} head(s) leaves block ${p.index}'s ${p.dimOut} channels indivisible: pass --config`);
  }
  return config;
}

// ---------------------------------------------------------------- parameter counts

export interface ParameterCounts {
  /** frozen Hiera trunk parameters */
  trunk: number;
  /** adapter (prompt_learn) parameters */
  adapter: number;
  /** decoder parameters used in the forward pass (RFBs, up1..3, side1, side2, head) */
  decoder: number;
  /** parameters of up4, which the official model defines, trains (no gradient) and never uses */
  up4Unused: number;
  /** BatchNorm running statistics (not parameters; num_batches_tracked counts as one) */
  buffers: number;
  /** trainable parameters per fine-tuning strategy, up4 included as PyTorch's count includes it */
  byStrategy: {
    /** adapters + decoder (the official recipe) */
    adapter: number;
    /** LoRA factors on attn.qkv and attn.proj of every block + decoder, for a rank */
    lora: (rank: number) => number;
    /** the whole model: trunk + adapters + decoder */
    full: number;
  };
}

/** Parameters LoRA of `rank` adds: r·(in + out) for every attn.qkv and attn.proj Linear. */
export function loraParameterCount(config: HieraConfig, rank: number): number {
  let n = 0;
  for (const b of blockPlan(config)) n += rank * (b.dim + 3 * b.dimOut) + rank * (b.dimOut + b.dimOut);
  return n;
}

export function parameterCounts(config: HieraConfig, outChannels = 1, layout: Sam2UNetLayout = {}): ParameterCounts {
  const sums: Record<KeyGroup, number> = { trunk: 0, adapter: 0, decoder: 0, up4: 0 };
  let buffers = 0;
  for (const spec of expectedSam2UNetKeys(config, outChannels, layout)) {
    if (spec.buffer) buffers += numel(spec.shape);
    else sums[spec.group] += numel(spec.shape);
  }
  const head = sums.decoder + sums.up4;
  return {
    trunk: sums.trunk,
    adapter: sums.adapter,
    decoder: sums.decoder,
    up4Unused: sums.up4,
    buffers,
    byStrategy: {
      adapter: sums.adapter + head,
      lora: (rank) => loraParameterCount(config, rank) + head,
      full: sums.trunk + sums.adapter + head,
    },
  };
}
