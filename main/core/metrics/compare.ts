/**
 * Follow-up: the change between two tumour descriptions (describe.ts) and the RANO-style category
 * the measurements alone suggest. The category is measurement support for the reader, not a
 * response assessment: RANO also weighs non-enhancing disease, steroids, clinical status and the
 * nadir over all prior scans, none of which a pair of label maps holds.
 */
import type { Lesion, TumourDescription } from './describe.ts';

export type RanoCategory = 'CR' | 'PR' | 'SD' | 'PD';

export const RANO_CATEGORY_NAMES: Readonly<Record<RanoCategory, string>> = Object.freeze({
  CR: 'complete response',
  PR: 'partial response',
  SD: 'stable disease',
  PD: 'progressive disease',
});

export const COMPARE_DISCLAIMER =
  'Measurement support, not a diagnosis: the category follows from the two label maps alone (RANO also weighs non-enhancing disease, steroid dose, clinical status and the nadir of earlier scans).';

/** RANO: partial response is a decrease of the sum of products by at least 50 %. */
export const RANO_RESPONSE_PCT = -50;
/** RANO: progression is an increase of the sum of products by at least 25 %. */
export const RANO_PROGRESSION_PCT = 25;

export interface RegionChange {
  baseline_ml: number;
  follow_up_ml: number;
  change_ml: number;
  /** null when the baseline volume is 0 */
  change_pct: number | null;
}

export interface Comparison {
  regions: Record<string, RegionChange>;
  rano: {
    baseline_sum_products_mm2: number;
    follow_up_sum_products_mm2: number;
    change_mm2: number;
    /** null when the baseline has no measurable disease */
    change_pct: number | null;
    new_measurable_lesions: number;
  };
  category: RanoCategory;
  category_name: string;
  reason: string;
  note: string;
}

const pct = (from: number, to: number): number | null => (from > 0 ? (100 * (to - from)) / from : null);

/**
 * A follow-up lesion is new when its sphere (centroid, half its largest diameter) meets no
 * baseline lesion's sphere: the two scans need not share a grid, so lesions are matched in
 * patient space, assuming the scans are registered (same frame of reference).
 */
function isNew(lesion: Lesion, baseline: readonly Lesion[]): boolean {
  return baseline.every((b) => {
    const d = Math.hypot(...lesion.centroid_lps.map((v, i) => v - b.centroid_lps[i]!));
    return d > (lesion.max_diameter_mm + b.max_diameter_mm) / 2;
  });
}

function etVoxels(d: TumourDescription): number {
  // a binary mask's one region stands for the enhancing disease it was drawn around
  return (d.regions.ET ?? d.regions.WT)?.voxels ?? 0;
}

export function compareDescriptions(baseline: TumourDescription, followUp: TumourDescription): Comparison {
  const regions: Record<string, RegionChange> = {};
  for (const name of Object.keys(baseline.regions)) {
    const b = baseline.regions[name]!.volume_ml;
    const f = followUp.regions[name]?.volume_ml;
    if (f === undefined) continue;
    regions[name] = { baseline_ml: b, follow_up_ml: f, change_ml: f - b, change_pct: pct(b, f) };
  }
  const bSum = baseline.rano_sum_products_mm2;
  const fSum = followUp.rano_sum_products_mm2;
  const change = pct(bSum, fSum);
  const newMeasurable = followUp.lesions.filter((l) => l.rano.measurable && isNew(l, baseline.lesions)).length;

  let category: RanoCategory;
  let reason: string;
  if (etVoxels(baseline) > 0 && etVoxels(followUp) === 0) {
    category = 'CR';
    reason = 'no enhancing disease is left';
  } else if (newMeasurable > 0) {
    category = 'PD';
    reason = `${newMeasurable} new measurable lesion${newMeasurable > 1 ? 's' : ''}`;
  } else if (change !== null && change >= RANO_PROGRESSION_PCT) {
    category = 'PD';
    reason = `sum of products up ${change.toFixed(1)} % (≥ ${RANO_PROGRESSION_PCT} %)`;
  } else if (change !== null && change <= RANO_RESPONSE_PCT) {
    category = 'PR';
    reason = `sum of products down ${(-change).toFixed(1)} % (≥ ${-RANO_RESPONSE_PCT} %)`;
  } else {
    category = 'SD';
    reason =
      change === null
        ? 'no measurable disease at baseline and no new measurable lesion'
        : `sum of products changed ${change >= 0 ? '+' : ''}${change.toFixed(1)} % (between ${RANO_RESPONSE_PCT} % and +${RANO_PROGRESSION_PCT} %)`;
  }
  return {
    regions,
    rano: { baseline_sum_products_mm2: bSum, follow_up_sum_products_mm2: fSum, change_mm2: fSum - bSum, change_pct: change, new_measurable_lesions: newMeasurable },
    category,
    category_name: RANO_CATEGORY_NAMES[category],
    reason,
    note: COMPARE_DISCLAIMER,
  };
}
