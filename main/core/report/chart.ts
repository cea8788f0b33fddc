/**
 * The per-slice chart of a report as data, drawn by both the SVG (HTML) and the PDF writers:
 * Dice per slice when there is ground truth, else the predicted volume per slice. The x axis is
 * in slice numbers (1-based) and a slice where a region is absent leaves a gap in its line
 * (conventions.ts), exactly as the app's chart does.
 */
import { EMPTY_SLICE_RULE, EMPTY_SLICE_RULE_PREDICTION, niceStep, regionColourRgb, regionPresent, sliceNumber, sliceTicks } from '../conventions.ts';
import type { MetricsReport } from './types.ts';

export interface ChartSeries {
  region: string;
  colour: [number, number, number];
  /** runs of consecutive slices: [slice number, value] points; a gap in the slices starts a new run */
  runs: [number, number][][];
  points: number;
}

export interface ChartModel {
  kind: 'dice' | 'volume';
  title: string;
  yLabel: string;
  /** slice numbers of the first and last slice */
  xMin: number;
  xMax: number;
  xTicks: number[];
  yMax: number;
  yTicks: number[];
  series: ChartSeries[];
  /** the empty-slice rule, printed under the chart */
  rule: string;
}

/** Runs of consecutive slices of the points that are present. */
function runsOf(points: { slice: number; value: number | null }[]): { runs: [number, number][][]; count: number } {
  const runs: [number, number][][] = [];
  let previous = -2;
  let count = 0;
  for (const { slice, value } of [...points].sort((a, b) => a.slice - b.slice)) {
    if (value === null) continue;
    if (slice !== previous + 1) runs.push([]);
    runs[runs.length - 1]!.push([sliceNumber(slice), value]);
    previous = slice;
    count++;
  }
  return { runs, count };
}

/** The report's chart, or null when there is nothing to plot (no ground truth and an empty prediction). */
export function reportChart(report: MetricsReport): ChartModel | null {
  const colours = report.settings.labelColours;
  const xMin = 1;
  const xMax = Math.max(2, report.dims[2]);
  const xTicks = sliceTicks(report.dims[2]);
  if (report.perVolume) {
    const series = report.settings.regions.map((region, index) => {
      const { runs, count } = runsOf(report.perSlice.map((e) => {
        const m = e.metrics[region];
        return { slice: e.slice, value: m && regionPresent(m) ? m.dice : null };
      }));
      return { region, colour: regionColourRgb(region, colours, index), runs, points: count };
    });
    return { kind: 'dice', title: 'Dice per slice', yLabel: 'Dice', xMin, xMax, xTicks, yMax: 1, yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1], series, rule: EMPTY_SLICE_RULE };
  }
  const series = report.settings.regions.map((region, index) => {
    const { runs, count } = runsOf(report.sliceVolumes.map((e) => ({ slice: e.slice, value: (e.ml[region] ?? 0) > 0 ? e.ml[region]! : null })));
    return { region, colour: regionColourRgb(region, colours, index), runs, points: count };
  });
  if (series.every((s) => s.points === 0)) return null;
  const peak = Math.max(...series.flatMap((s) => s.runs.flat().map(([, v]) => v)));
  const step = niceStep(peak, 5);
  const yMax = Math.ceil(peak / step - 1e-9) * step;
  const yTicks: number[] = [];
  for (let t = 0; t <= yMax + step * 1e-9; t += step) yTicks.push(+t.toPrecision(12));
  return { kind: 'volume', title: 'Predicted volume per slice', yLabel: 'ml', xMin, xMax, xTicks, yMax, yTicks, series, rule: EMPTY_SLICE_RULE_PREDICTION };
}

/** A y tick as text: Dice with one decimal, volumes as short as they are exact. */
export function tickText(chart: ChartModel, value: number): string {
  return chart.kind === 'dice' ? value.toFixed(1) : String(+value.toPrecision(6));
}
