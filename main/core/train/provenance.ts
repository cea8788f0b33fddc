/**
 * Where a model fine-tuned here came from (base model, studies, held-out studies, strategy, steps,
 * date, held-out Dice before and after), stored as JSON in its safetensors metadata. A module of
 * its own, without the training engine, so that the UI's process and the io worker can read it.
 */
import type { ModelProvenance } from '../api.ts';

export type Provenance = ModelProvenance;

/** the safetensors metadata key */
export const PROVENANCE_KEY = 'provenance';

/** The regions that have a score (a region that could not be scored is left out, not written as null). */
export function finiteOnly(dice: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(dice).filter(([, d]) => Number.isFinite(d)));
}

/** The provenance in a checkpoint's metadata; a malformed one is left out (it is information, not a setting). */
export function provenanceFromMetadata(metadata: Record<string, string>): Provenance | undefined {
  const text = metadata[PROVENANCE_KEY];
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Provenance;
    const strings = (x: unknown) => Array.isArray(x) && x.every((v) => typeof v === 'string');
    const dice = (x: unknown) => typeof x === 'object' && x !== null && Object.values(x).every((v) => typeof v === 'number');
    const ok =
      typeof value.baseModel === 'string' &&
      strings(value.studies) &&
      strings(value.heldOut) &&
      typeof value.strategy === 'string' &&
      Number.isInteger(value.steps) &&
      typeof value.date === 'string' &&
      (value.seconds === undefined || typeof value.seconds === 'number') &&
      (value.heldOutDice === undefined || (dice(value.heldOutDice.before) && dice(value.heldOutDice.after)));
    return ok ? value : undefined;
  } catch {
    return undefined;
  }
}
