import { defineCommand, requireOption } from '../command.ts';
import type { Comparison } from '../../core/metrics/compare.ts';

const signed = (v: number, digits: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const percent = (v: number | null): string => (v === null ? 'n/a' : `${signed(v, 1)} %`);

export function formatComparison(c: Comparison): string {
  const rows = [['Region', 'Baseline (ml)', 'Follow-up (ml)', 'Change (ml)', 'Change'], ...Object.entries(c.regions).map(([name, r]) => [name, r.baseline_ml.toFixed(2), r.follow_up_ml.toFixed(2), signed(r.change_ml, 2), percent(r.change_pct)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
  return [
    ...lines,
    '',
    `RANO sum of products: ${c.rano.baseline_sum_products_mm2.toFixed(1)} → ${c.rano.follow_up_sum_products_mm2.toFixed(1)} mm² (${percent(c.rano.change_pct)}); new measurable lesions: ${c.rano.new_measurable_lesions}`,
    `RANO-style category: ${c.category} (${c.category_name}): ${c.reason}`,
    c.note,
    '',
  ].join('\n');
}

export default defineCommand({
  name: 'compare',
  summary: 'follow-up: volume and RANO changes between two label maps and the RANO-style category (measurement support)',
  usage: 'compare --baseline <mask | measure JSON> --follow-up <mask | measure JSON> [--json]',
  options: {
    baseline: { type: 'string', valueName: 'file', description: 'baseline label map (NIfTI or DICOM SEG) or the output of `measure --json` (.json)' },
    'follow-up': { type: 'string', valueName: 'file', description: 'follow-up label map or measure JSON, same form' },
    json: { type: 'boolean', description: 'print the comparison as one JSON line' },
  },
  details: [
    'Category from the measurements alone: CR when no enhancing disease is left; PD when a new measurable lesion',
    'appears or the sum of products rises by 25 % or more; PR when it falls by 50 % or more; SD otherwise.',
    'A follow-up lesion is new when it lies apart from every baseline lesion (patient coordinates; the scans are',
    'assumed registered). This is measurement support, not a diagnosis.',
    'With --json: {"regions": {"<region>": {"baseline_ml", "follow_up_ml", "change_ml", "change_pct"}}, "rano":',
    '{"baseline_sum_products_mm2", "follow_up_sum_products_mm2", "change_mm2", "change_pct", "new_measurable_lesions"},',
    '"category", "category_name", "reason", "note"}.',
  ].join('\n'),
  async run(args, io) {
    const baselinePath = requireOption(args, 'baseline');
    const followUpPath = requireOption(args, 'follow-up');
    const { descriptionOf } = await import('../../core/metrics/describe-input.ts');
    const { compareDescriptions } = await import('../../core/metrics/compare.ts');
    const [baseline, followUp] = await Promise.all([descriptionOf(baselinePath), descriptionOf(followUpPath)]);
    const comparison = compareDescriptions(baseline, followUp);
    io.stdout(args.values.json ? `${JSON.stringify(comparison)}\n` : formatComparison(comparison));
    return 0;
  },
});
