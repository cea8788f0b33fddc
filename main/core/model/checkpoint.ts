/**
 * Loads model weights from any supported file and checks them against the model they claim to be:
 * - SAM2 checkpoints (`sam2_hiera_*.pt`, torch.save zip, state_dict under `model`): the Hiera trunk
 *   (`image_encoder.trunk.*`) is kept, everything else is listed in `ignored`;
 * - SAM2-UNet checkpoints (`SAM2-UNet-*.pth`, a bare state_dict): all keys, official names;
 * - safetensors files holding either of the above, or a bare trunk.
 * The format is found from the first bytes, never from the file name.
 */
import { FileError } from '../errors.ts';
import { openForReading } from '../util/fs.ts';
import { parseHieraConfig, type HieraConfig } from './config.ts';
import type { WeightDtype } from './dtype.ts';
import {
  detectHieraConfig,
  expectedSam2UNetKeys,
  expectedTrunkKeys,
  SAM2_TRUNK_PREFIX,
  SAM2UNET_ENCODER_PREFIX,
  sam2UNetKeyToTrunk,
  validateStateDict,
  type KeySpec,
} from './keys.ts';
import { runSettingsFromMetadata, runSettingsMetadata, type RunSettings, type StoredRunSettings, type TestTimeAugmentation } from './run-settings.ts';
import { readSafetensorsFile, readSafetensorsHeader, writeSafetensors } from './safetensors.ts';
import { numel, type StateDict } from './tensor.ts';
import { readTorchStateDict } from './torch-pickle.ts';

export type CheckpointKind = 'trunk' | 'sam2unet';
export type CheckpointFormat = 'sam2-pt' | 'sam2unet-pth' | 'safetensors';

export interface LoadedCheckpoint {
  kind: CheckpointKind;
  format: CheckpointFormat;
  /** the trunk configuration: as given, as stored in our own safetensors metadata, or detected from shapes */
  config: HieraConfig;
  /** output channels of side1/side2/head (1 = official binary model, 3 = BraTS); 1 for a bare trunk */
  outChannels: number;
  /**
   * float32 tensors. sam2unet: official SAM2-UNet keys, BatchNorm buffers included (running_mean,
   * running_var, and num_batches_tracked when the file has it, as a float scalar). trunk: trunk keys
   * without prefix (`pos_embed`, `blocks.0.attn.qkv.weight`, ...).
   */
  weights: StateDict;
  /** keys in the file that are not part of the model (a SAM2 checkpoint's decoder and memory modules) */
  ignored: string[];
  /** keys of `weights` that are buffers, not parameters */
  buffers: string[];
  /** each tensor's dtype in the file (the weights are float32 regardless) */
  dtypes: Map<string, WeightDtype>;
  /** how the model must be run, as far as the file says (our safetensors metadata; nothing for .pth / .pt) */
  run: StoredRunSettings;
}

export interface ReadCheckpointOptions {
  /** the trunk configuration; when absent it is detected from the tensor shapes */
  config?: HieraConfig;
  /** for trunk files only: outChannels to report (the head is not in the file) */
  outChannels?: number;
}

/** safetensors metadata keys our own writer stores, so fine-tuned files describe themselves */
export const METADATA_CONFIG = 'hiera_config';
export const METADATA_OUT_CHANNELS = 'out_channels';
export const METADATA_KIND = 'kind';

/**
 * The metadata of every SAM2-UNet checkpoint we write: what it is, its trunk configuration and
 * how it must be run (input size, input sequences, regions; run-settings.ts), so that segment,
 * the app and train --checkpoint need no flags to use it as it was trained.
 */
export function sam2UNetMetadata(config: HieraConfig, outChannels: number, run: Pick<RunSettings, 'size' | 'channels' | 'regions'> & { tta?: TestTimeAugmentation }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    [METADATA_KIND]: 'sam2unet',
    [METADATA_CONFIG]: JSON.stringify(config),
    [METADATA_OUT_CHANNELS]: String(outChannels),
    ...runSettingsMetadata(run),
  };
}

/**
 * What a checkpoint file says about how it must be run, from the safetensors header alone (cheap:
 * no weights are read); .pth and .pt files say nothing.
 */
export async function readStoredRunSettings(path: string): Promise<StoredRunSettings> {
  if ((await sniff(path)) !== 'safetensors') return {};
  const { metadata } = await readSafetensorsHeader(path);
  return storedRunSettings(metadata, path);
}

function storedRunSettings(metadata: Record<string, string>, path: string): StoredRunSettings {
  return runSettingsFromMetadata(metadata, (problem) => {
    throw new FileError(path, problem);
  });
}

type Layout = { kind: CheckpointKind; prefix: string };

/** Decides the layout from the key names alone. */
function layoutOf(keys: readonly string[], path: string): Layout {
  if (keys.some((k) => k.startsWith(SAM2_TRUNK_PREFIX))) return { kind: 'trunk', prefix: SAM2_TRUNK_PREFIX };
  if (keys.some((k) => k.startsWith(SAM2UNET_ENCODER_PREFIX))) return { kind: 'sam2unet', prefix: '' };
  if (keys.includes('patch_embed.proj.weight') || keys.some((k) => /^blocks\.\d+\./.test(k))) return { kind: 'trunk', prefix: '' };
  const sample = keys.slice(0, 5).join(', ');
  throw new FileError(path, `neither a SAM2 checkpoint (image_encoder.trunk.*), a SAM2-UNet checkpoint (encoder.*) nor a bare Hiera trunk (keys: ${sample || 'none'})`);
}

type Sniffed = 'torch' | 'legacy-torch' | 'safetensors';

async function sniff(path: string): Promise<Sniffed> {
  const handle = await openForReading(path);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new FileError(path, 'not a regular file');
    const size = stat.size;
    const head = new Uint8Array(9);
    await handle.read(head, 0, Math.min(9, size), 0);
    if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'torch';
    if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'legacy-torch';
    const headerLength = new DataView(head.buffer).getBigUint64(0, true);
    if (size >= 9 && headerLength > 1n && 8n + headerLength <= BigInt(size) && head[8] === 0x7b /* { */) return 'safetensors';
    const what = size === 0 ? 'the file is empty' : 'neither a torch.save zip nor safetensors';
    throw new FileError(path, `not a checkpoint (${what})`);
  } finally {
    await handle.close();
  }
}

function configFromMetadata(metadata: Record<string, string>, path: string): HieraConfig | undefined {
  const text = metadata[METADATA_CONFIG];
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FileError(path, `metadata "${METADATA_CONFIG}" is not JSON`);
  }
  return parseHieraConfig(value, `${path} metadata`);
}

function checkFinite(weights: StateDict, path: string): void {
  const bad: string[] = [];
  for (const [key, t] of weights) {
    const d = t.data;
    // x - x is NaN exactly for NaN and ±Infinity; summing keeps the loop branch-free
    let acc = 0;
    for (let i = 0; i < d.length; i++) acc += d[i]! - d[i]!;
    if (acc !== 0) bad.push(key);
  }
  if (bad.length) throw new FileError(path, `${bad.length} tensor(s) hold NaN or infinite values (${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', …' : ''})`);
}

export async function readCheckpoint(path: string, opts: ReadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  const type = await sniff(path);
  let layout: Layout | undefined;
  const include = (key: string, all: readonly string[]) => {
    layout ??= layoutOf(all, path);
    return key.startsWith(layout.prefix);
  };
  let raw: StateDict;
  let dtypes: Map<string, WeightDtype>;
  let ignored: string[];
  let format: CheckpointFormat;
  let storedConfig: HieraConfig | undefined;
  let storedOutChannels: number | undefined;
  let run: StoredRunSettings = {};
  if (type === 'safetensors') {
    const file = await readSafetensorsFile(path, { include });
    ({ tensors: raw, dtypes, skipped: ignored } = file);
    format = 'safetensors';
    storedConfig = configFromMetadata(file.metadata, path);
    const oc = file.metadata[METADATA_OUT_CHANNELS];
    if (oc !== undefined) storedOutChannels = Number(oc);
    run = storedRunSettings(file.metadata, path);
  } else {
    // legacy-torch falls through to the torch reader, which explains how to convert the file
    const sd = await readTorchStateDict(path, { include });
    ({ tensors: raw, dtypes, skipped: ignored } = sd);
    layout ??= layoutOf([...raw.keys()], path);
    format = layout.kind === 'sam2unet' ? 'sam2unet-pth' : 'sam2-pt';
  }
  layout ??= layoutOf([...raw.keys()], path);

  let weights: StateDict;
  if (layout.prefix) {
    weights = new Map();
    for (const [k, t] of raw) weights.set(k.slice(layout.prefix.length), t);
    const stripped = new Map<string, WeightDtype>();
    for (const [k, d] of dtypes) if (k.startsWith(layout.prefix)) stripped.set(k.slice(layout.prefix.length), d);
    dtypes = stripped;
  } else {
    weights = raw;
  }

  // the trunk part, under trunk names, for detection
  let trunk = weights;
  if (layout.kind === 'sam2unet') {
    trunk = new Map();
    for (const [k, t] of weights) {
      const tk = sam2UNetKeyToTrunk(k);
      if (tk !== undefined) trunk.set(tk, t);
    }
  }
  const config = opts.config ?? storedConfig ?? detectHieraConfig(trunk, path);

  let outChannels: number;
  let expected: KeySpec[];
  if (layout.kind === 'sam2unet') {
    const head = weights.get('head.weight');
    outChannels = head && head.shape.length === 4 ? head.shape[0]! : (storedOutChannels ?? 1);
    expected = expectedSam2UNetKeys(config, outChannels);
    // safetensors exports (the golden model.safetensors too) leave num_batches_tracked out
    validateStateDict(weights, expected, path, { allowMissingBatchCounters: true });
  } else {
    outChannels = opts.outChannels ?? storedOutChannels ?? 1;
    expected = expectedTrunkKeys(config);
    // name the keys in errors as the file does
    const named = layout.prefix ? expected.map((s) => ({ ...s, key: layout!.prefix + s.key })) : expected;
    validateStateDict(raw, named, path);
  }
  if (!Number.isInteger(outChannels) || outChannels < 1) throw new FileError(path, `bad output channel count ${outChannels}`);
  checkFinite(weights, path);
  const bufferKeys = new Set(expected.filter((s) => s.buffer).map((s) => s.key));
  return {
    kind: layout.kind,
    format,
    config,
    outChannels,
    weights,
    ignored,
    buffers: [...weights.keys()].filter((k) => bufferKeys.has(k)),
    dtypes,
    run,
  };
}

/**
 * Writes SAM2-UNet weights (official key names) as safetensors, validated first, with the
 * configuration and run settings in the metadata so readCheckpoint needs no --config for custom
 * trunks and segment no --size / --channels / --regions.
 */
export async function writeSam2UNetCheckpoint(
  path: string,
  weights: StateDict,
  config: HieraConfig,
  outChannels: number,
  run: Pick<RunSettings, 'size' | 'channels' | 'regions'> & { tta?: TestTimeAugmentation },
  extraMetadata: Record<string, string> = {},
): Promise<void> {
  validateStateDict(weights, expectedSam2UNetKeys(config, outChannels), path, { allowMissingBatchCounters: true });
  for (const [k, t] of weights) if (numel(t.shape) !== t.data.length) throw new FileError(path, `tensor ${k} has ${t.data.length} values for shape [${t.shape}]`);
  await writeSafetensors(path, weights, sam2UNetMetadata(config, outChannels, run, extraMetadata));
}
