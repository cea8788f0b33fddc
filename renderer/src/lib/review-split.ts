import type { ReviewedStudy } from '../../../main/core/api.ts';

/** What a reviewed study is in the next fine-tuning run. */
export type ReviewRole = 'train' | 'heldOut' | 'skip';

/**
 * The automatic split of the reviewed studies: a fifth of the trainable ones (at least one, the
 * last in name order, so the split is the same each time) held out for the before/after Dice,
 * the rest trained on; a study the trainer cannot read is skipped.
 */
export function autoSplit(studies: readonly ReviewedStudy[]): Record<string, ReviewRole> {
  const usable = studies.filter((s) => s.trainable).map((s) => s.name).sort();
  const held = usable.length >= 2 ? Math.max(1, Math.round(usable.length / 5)) : 0;
  const roles: Record<string, ReviewRole> = {};
  for (const s of studies) roles[s.name] = 'skip';
  usable.forEach((name, i) => (roles[name] = i >= usable.length - held ? 'heldOut' : 'train'));
  return roles;
}
