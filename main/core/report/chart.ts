/** The per-slice Dice chart as data, drawn by both the SVG (HTML) and the PDF writers. */
import { regionColour } from './format.ts';
import type { MetricsReport } from './types.ts';

export interface ChartSeries {
  region: string;
  colour: [number, number, number];
  /** runs of consecutive slices: [slice, dice] points; a gap in the slices starts a new run */
  runs: [number, number][][];
  points: number;
}

export interface ChartModel {
  xMin: number;
  xMax: number;
  xTicks: number[];
  yTicks: number[];
  series: ChartSeries[];
}

/** Slices where the region is in the ground truth or the prediction; elsewhere Dice is 1 by the empty rule and says nothing. */
export function diceChart(report: MetricsReport): ChartModel {
  const series: ChartSeries[] = report.settings.regions.map((region, index) => {
    const runs: [number, number][][] = [];
    let previous = -2;
    let points = 0;
    for (const entry of [...report.perSlice].sort((a, b) => a.slice - b.slice)) {
      const m = entry.metrics[region];
      if (!m || m.tp + m.fp + m.fn === 0) continue;
      if (entry.slice !== previous + 1) runs.push([]);
      runs[runs.length - 1]!.push([entry.slice, m.dice]);
      previous = entry.slice;
      points++;
    }
    return { region, colour: regionColour(region, index), runs, points };
  });
  const xMin = 0;
  const xMax = Math.max(1, report.dims[2] - 1);
  const step = niceStep(xMax - xMin, 8);
  const xTicks: number[] = [];
  for (let x = 0; x <= xMax; x += step) xTicks.push(x);
  return { xMin, xMax, xTicks, yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1], series };
}

function niceStep(range: number, maxTicks: number): number {
  const raw = range / maxTicks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}
