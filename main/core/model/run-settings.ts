/**
 * How a model must be run: its input size, the sequences fed to its input channels, how its
 * output channels are read (regions) and whether each slice is also run mirrored (test-time
 * augmentation). The one place that decides, for the CLI, the app's service and the renderer alike:
 *
 * - Precedence, per setting: what the user says (--size / --channels / --regions, or the app's
 *   request) > what the checkpoint says (safetensors metadata the trainer writes) > what the
 *   bundled model's config.json says > defaults (352×352; FLAIR, T1ce, T2; regions by the number
 *   of output channels, 3 → brats, 1 → binary; no test-time augmentation). Official `.pth` and SAM2 `.pt` files say nothing,
 *   so they get the defaults, and the run panel says they are defaults.
 * - Sequence → channel mapping: model channel i takes the study sequence named as the model's
 *   channel i (case-insensitive). A study lacking one is refused unless the user names a
 *   substitute for it; every substitution becomes a note written into the report.
 *
 * Pure and free of Node and DOM imports: the renderer imports it to show the mapping.
 */
import { TEST_TIME_AUGMENTATIONS } from '../api.ts';
import { UserError } from '../errors.ts';
import type { RegionKind } from '../metrics/regions.ts';

export const DEFAULT_RUN_SIZE: readonly [number, number] = [352, 352];
export const DEFAULT_RUN_CHANNELS: readonly string[] = ['flair', 't1ce', 't2'];

/**
 * The input-size rule, one place for the CLI's flags, stored settings and the app's requests:
 * the patch embedding (stride 4) and the three 2× poolings between Hiera's four stages reduce by
 * 32 in all, so each side is a multiple of 32; the upper bound keeps a mistyped or hostile
 * request from asking the engine for tens of gigabytes of activations.
 */
export const INPUT_SIDE_RULE = 'a multiple of 32 between 32 and 4096';
export function isInputSide(d: unknown): boolean {
  return Number.isInteger(d) && (d as number) >= 32 && (d as number) % 32 === 0 && (d as number) <= 4096;
}

/** Refuses a [height, width] off the input-size rule (flags, requests). */
export function checkInputSize(size: readonly [number, number]): void {
  if (!size.every(isInputSide)) throw new UserError(`model input size ${size.join('×')}: each side must be ${INPUT_SIDE_RULE}`);
}

/**
 * Test-time augmentation. 'mirror' is nnU-Net's mirroring at inference: each slice also goes to
 * the model flipped left-right, front-back and both, and the four logit maps, flipped back, are
 * averaged (jobs/slice-model.ts mirrorAveraged). It costs four model runs per slice, so it is a
 * setting a checkpoint or the user asks for, not a default: a 352×352 hiera_t would take four times
 * its 0.5 s per slice on a CPU, and the bundled model tried it and stays on one view
 * (models/README.md, "Run 21 with test-time mirroring").
 */
export { TEST_TIME_AUGMENTATIONS };
export type TestTimeAugmentation = (typeof TEST_TIME_AUGMENTATIONS)[number];

/** "four views averaged (as is, mirrored left-right, front-back, both)": what a report and a panel say. */
export function describeTta(tta: TestTimeAugmentation): string {
  return tta === 'mirror' ? 'mirroring: 4 views averaged (as is, flipped left-right, front-back, both)' : 'none (one view)';
}

/** safetensors metadata keys (beside hiera_config, out_channels and kind, see checkpoint.ts) */
export const METADATA_INPUT_SIZE = 'input_size';
export const METADATA_INPUT_CHANNELS = 'input_channels';
export const METADATA_REGIONS = 'regions';
export const METADATA_TTA = 'test_time_augmentation';

/** What one source (a checkpoint, config.json, the user) says; absent = says nothing. */
export interface StoredRunSettings {
  size?: [number, number];
  channels?: string[];
  regions?: RegionKind;
  tta?: TestTimeAugmentation;
}

export type RunSettingSource = 'user' | 'checkpoint' | 'bundled' | 'default';

export interface RunSettings {
  size: [number, number];
  /** the sequence each input channel takes, in channel order (three names) */
  channels: string[];
  regions: RegionKind;
  tta: TestTimeAugmentation;
  from: { size: RunSettingSource; channels: RunSettingSource; regions: RunSettingSource; tta: RunSettingSource };
}

export interface RunSettingLayers {
  /** explicit user choices */
  user?: StoredRunSettings;
  /** the checkpoint's own metadata */
  checkpoint?: StoredRunSettings;
  /** the bundled model's config.json, when the checkpoint is the bundled one */
  bundled?: StoredRunSettings;
}

/** the default reading of a model's output channels; undefined when there is none */
export function regionsForOutChannels(outChannels: number): RegionKind | undefined {
  return outChannels === 3 ? 'brats' : outChannels === 1 ? 'binary' : undefined;
}

function pick<K extends keyof StoredRunSettings>(layers: RunSettingLayers, key: K): { value: StoredRunSettings[K]; from: RunSettingSource } | undefined {
  for (const from of ['user', 'checkpoint', 'bundled'] as const) {
    const value = layers[from]?.[key];
    if (value !== undefined) return { value, from };
  }
  return undefined;
}

/**
 * The settings in force. `outChannels` gives the default regions (a trunk or an unreadable head:
 * brats, what training from it produces).
 */
export function resolveRunSettings(layers: RunSettingLayers, outChannels = 3): RunSettings {
  const size = pick(layers, 'size');
  const channels = pick(layers, 'channels');
  const regions = pick(layers, 'regions');
  const tta = pick(layers, 'tta');
  return {
    size: size ? [...size.value!] : [...DEFAULT_RUN_SIZE],
    channels: channels ? expandChannels(channels.value!) : [...DEFAULT_RUN_CHANNELS],
    regions: regions ? regions.value! : (regionsForOutChannels(outChannels) ?? 'brats'),
    tta: tta ? tta.value! : 'none',
    from: { size: size?.from ?? 'default', channels: channels?.from ?? 'default', regions: regions?.from ?? 'default', tta: tta?.from ?? 'default' },
  };
}

/** One name stands for all three channels; otherwise exactly three. */
export function expandChannels(names: readonly string[]): string[] {
  const list = names.map((n) => n.trim()).filter((n) => n.length > 0);
  if (list.length === 1) return [list[0]!, list[0]!, list[0]!];
  if (list.length !== 3) throw new UserError(`input channels: give one sequence (used for all three) or three, not ${list.length} (${names.join(', ')})`);
  return list;
}

const SOURCE_WORDS: Record<RunSettingSource, string> = {
  user: 'as chosen',
  checkpoint: 'from the checkpoint',
  bundled: "from the bundled model's config.json",
  default: 'by default',
};

export function sourceWords(from: RunSettingSource): string {
  return SOURCE_WORDS[from];
}

/** "input 128×128 from the checkpoint", … : what a front end says before it runs a model. */
export function describeRunSettings(s: RunSettings): string[] {
  return [
    `input ${s.size[0]}×${s.size[1]} ${sourceWords(s.from.size)}`,
    `channels ${s.channels.join(', ')} ${sourceWords(s.from.channels)}`,
    `regions ${s.regions} ${sourceWords(s.from.regions)}`,
    `test-time augmentation ${describeTta(s.tta)} ${sourceWords(s.from.tta)}`,
  ];
}

// ---------------------------------------------------------------------------------------------
// Sequence → channel mapping

export interface ChannelAssignment {
  /** 0-based model input channel */
  channel: number;
  /** the sequence the model takes there */
  expects: string;
  /** the study's sequence (its own spelling) fed there; null when the study lacks it and no substitute was chosen */
  sequence: string | null;
  /** fed with another sequence than the one the model takes */
  substitute: boolean;
}

export interface ChannelMapping {
  assignments: ChannelAssignment[];
  /** the model's channels the study lacks and no substitute was chosen for */
  missing: ChannelAssignment[];
  /** one sentence per substitution, for the report */
  notes: string[];
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * Which study sequence feeds each model channel. `chosen`: the user's choice per channel (one
 * name for all three, or three; in a list of three an empty string means "the model's own").
 * A chosen name the study does not have is an error.
 */
export function mapChannels(studyName: string, sequences: readonly string[], expected: readonly string[], chosen?: readonly string[]): ChannelMapping {
  const picks = chosen?.length ? (chosen.length === 1 ? expected.map(() => chosen[0]!) : [...chosen]) : [];
  if (picks.length && picks.length !== expected.length) {
    throw new UserError(`input channels: the model takes ${expected.length} (${expected.join(', ')}); ${picks.length} given (${picks.join(', ')})`);
  }
  const find = (name: string) => sequences.find((s) => same(s, name));
  const assignments = expected.map((expects, channel): ChannelAssignment => {
    const wanted = picks[channel]?.trim();
    if (wanted) {
      const sequence = find(wanted);
      if (!sequence) throw new UserError(`${studyName}: no sequence "${wanted}" to feed channel ${channel + 1} (it has ${sequences.join(', ')})`);
      return { channel, expects, sequence, substitute: !same(sequence, expects) };
    }
    return { channel, expects, sequence: find(expects) ?? null, substitute: false };
  });
  const notes = assignments
    .filter((a) => a.substitute)
    .map((a) => `channel ${a.channel + 1} takes ${a.expects}; fed with ${a.sequence} instead (${find(a.expects) ? `chosen over the study's ${find(a.expects)}` : `the study has no ${a.expects}`})`);
  return { assignments, missing: assignments.filter((a) => a.sequence === null), notes };
}

/** "flair ← flair, t1ce ← flair (substitute), t2 ← flair (substitute)": model channel ← study sequence. */
export function describeMapping(mapping: ChannelMapping): string {
  return mapping.assignments.map((a) => `${a.expects} ← ${a.sequence ?? 'missing'}${a.substitute ? ' (substitute)' : ''}`).join(', ');
}

/**
 * What a report must say about how the model was run beyond the plain settings: every
 * substitution, and every setting that is only a default because the checkpoint does not say.
 */
export function runNotes(s: RunSettings, mapping?: ChannelMapping): string[] {
  const notes = [...(mapping?.notes ?? [])];
  const assumed: string[] = [];
  if (s.from.size === 'default') assumed.push(`input ${s.size[0]}×${s.size[1]}`);
  if (s.from.channels === 'default') assumed.push(`channels ${s.channels.join(', ')}`);
  if (s.from.regions === 'default') assumed.push(`regions ${s.regions} (from its ${s.regions === 'brats' ? 3 : 1} output channel${s.regions === 'brats' ? 's' : ''})`);
  if (assumed.length) notes.push(`the checkpoint does not say how it must be run; defaults used: ${assumed.join(', ')}`);
  return notes;
}

/**
 * The refusal for a study that lacks sequences the model takes. `howToSubstitute` is the
 * front end's way to choose substitutes (the CLI names its flag, the app its selects).
 */
export function missingChannelsMessage(studyName: string, sequences: readonly string[], mapping: ChannelMapping, howToSubstitute: string): string {
  const takes = mapping.assignments.map((a) => a.expects).join(', ');
  const lacks = mapping.missing.map((a) => `${a.expects} (channel ${a.channel + 1})`).join(', ');
  return `${studyName}: the model takes ${takes}; the study has no ${lacks} (it has ${sequences.join(', ') || 'no sequence'}). ${howToSubstitute}`;
}

/** The CLI's hint: the --channels value that feeds what the study has. */
export function channelsFlagHint(mapping: ChannelMapping, sequences: readonly string[]): string {
  const fallback = sequences[0] ?? 'flair';
  const value = mapping.assignments.map((a) => a.sequence ?? fallback).join(',');
  return `To feed another sequence instead, pass --channels ${value} (one name per model channel); the substitution is written into the report.`;
}

/** Throws the refusal when a channel lacks its sequence; else the sequences in channel order. */
export function requireChannels(studyName: string, sequences: readonly string[], mapping: ChannelMapping, howToSubstitute: string): string[] {
  if (mapping.missing.length) throw new UserError(missingChannelsMessage(studyName, sequences, mapping, howToSubstitute));
  return mapping.assignments.map((a) => a.sequence!);
}

// ---------------------------------------------------------------------------------------------
// Stored form (safetensors metadata and config.json)

/** Raises the error of a bad stored value; callers name the file (FileError) or the source. */
export type Fail = (problem: string) => never;

function parseSize(value: unknown, fail: Fail): [number, number] {
  const pair = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(isInputSide)) {
    fail(`input size ${JSON.stringify(value)} must be N or [height, width], each ${INPUT_SIDE_RULE}`);
  }
  return [(pair as number[])[0]!, (pair as number[])[1]!];
}

function parseChannels(value: unknown, fail: Fail): string[] {
  if (!Array.isArray(value) || !value.every((n) => typeof n === 'string' && n.trim().length > 0 && n.length <= 64) || (value.length !== 1 && value.length !== 3)) {
    fail(`input channels ${JSON.stringify(value)} must be a list of one or three sequence names`);
  }
  return expandChannels(value as string[]);
}

function parseTta(value: unknown, fail: Fail): TestTimeAugmentation {
  if (!TEST_TIME_AUGMENTATIONS.includes(value as TestTimeAugmentation)) fail(`test-time augmentation ${JSON.stringify(value)} must be ${TEST_TIME_AUGMENTATIONS.map((t) => `"${t}"`).join(' or ')}`);
  return value as TestTimeAugmentation;
}

function parseRegions(value: unknown, fail: Fail): RegionKind {
  if (value !== 'brats' && value !== 'binary') fail(`regions ${JSON.stringify(value)} must be "brats" or "binary"`);
  return value as RegionKind;
}

/** Run settings from a JSON object with any of "size", "channels", "regions", "tta" (config.json). */
export function parseRunSettingsJson(record: { size?: unknown; channels?: unknown; regions?: unknown; tta?: unknown }, fail: Fail): StoredRunSettings {
  return {
    ...(record.size !== undefined ? { size: parseSize(record.size, fail) } : {}),
    ...(record.channels !== undefined ? { channels: parseChannels(record.channels, fail) } : {}),
    ...(record.regions !== undefined ? { regions: parseRegions(record.regions, fail) } : {}),
    ...(record.tta !== undefined ? { tta: parseTta(record.tta, fail) } : {}),
  };
}

/** Run settings from safetensors metadata (strings, JSON-encoded where not plain). */
export function runSettingsFromMetadata(metadata: Record<string, string>, fail: Fail): StoredRunSettings {
  const json = (key: string): unknown => {
    const text = metadata[key];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return fail(`metadata "${key}" is not JSON (${text.slice(0, 40)})`);
    }
  };
  return parseRunSettingsJson(
    { size: json(METADATA_INPUT_SIZE), channels: json(METADATA_INPUT_CHANNELS), regions: metadata[METADATA_REGIONS], tta: metadata[METADATA_TTA] },
    (problem) => fail(`metadata: ${problem}`),
  );
}

/** `tta` is written only when given: a checkpoint that does not say runs with one view. */
export function runSettingsMetadata(s: { size: readonly [number, number]; channels: readonly string[]; regions: RegionKind; tta?: TestTimeAugmentation }): Record<string, string> {
  return {
    [METADATA_INPUT_SIZE]: JSON.stringify([s.size[0], s.size[1]]),
    [METADATA_INPUT_CHANNELS]: JSON.stringify(expandChannels(s.channels)),
    [METADATA_REGIONS]: s.regions,
    ...(s.tta ? { [METADATA_TTA]: s.tta } : {}),
  };
}
