import { presetName } from '../model/config.ts';
import { describeMapping, runNotes, type ChannelMapping } from '../model/run-settings.ts';
import { modelName } from './bundled.ts';
import type { PredictionRun } from './kinds.ts';
import type { CheckpointModel } from './model.ts';
import type { SegmentSummary } from './segment.ts';

/**
 * What produced a prediction, as the reports record it: the same words whether the app's job or
 * the CLI ran it.
 */
export function predictionRun(model: CheckpointModel, mapping: ChannelMapping, summary: SegmentSummary): PredictionRun {
  return {
    model: modelName(model.checkpoint, model.bundled),
    checkpoint: model.checkpoint,
    preset: presetName(model.config) ?? `custom (embed_dim ${model.config.embed_dim})`,
    device: model.provider,
    inputSize: model.inputSize[0],
    tta: model.settings.tta,
    regions: summary.regions,
    channels: describeMapping(mapping),
    notes: runNotes(model.settings, mapping),
    loadMs: model.loadMs,
    ms: summary.ms,
    precision: model.precision,
    slices: { total: summary.slices, empty: summary.emptySlices, batches: summary.batches.length },
    postprocessing: summary.postprocessing,
  };
}
