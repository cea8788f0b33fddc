/**
 * The default display window of a volume, computed once per volume (it reads every voxel) and
 * cached; the reader thread computes it and hands it over with the volume.
 */
import type { DisplayWindow } from '../api.ts';
import type { Volume } from './volume.ts';

const windows = new WeakMap<Volume, DisplayWindow>();

export function displayWindow(volume: Volume): DisplayWindow {
  let window = windows.get(volume);
  if (!window) {
    window = robustWindow(volume);
    windows.set(volume, window);
  }
  return window;
}

/** Records a window computed by another thread for the same voxels. */
export function seedDisplayWindow(volume: Volume, window: DisplayWindow): void {
  windows.set(volume, window);
}

/**
 * A display window from the 0.5 and 99.5 percentiles of the non-zero voxels (the background of a
 * skull-stripped MRI is zero and would otherwise pull the window down). Histogram-based: two
 * passes, no sort, no copy.
 */
export function robustWindow(volume: Volume): DisplayWindow {
  const { min, max } = volume.stats();
  if (!(max > min)) return { center: min, width: 1 };
  const bins = 4096;
  const histogram = new Uint32Array(bins);
  const { data, slope, intercept } = volume;
  const scale = (bins - 1) / (max - min);
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const value = data[i]! * slope + intercept;
    if (value === 0) continue;
    histogram[Math.floor((value - min) * scale)]!++;
    count++;
  }
  if (count === 0) return { center: (min + max) / 2, width: max - min };
  const quantile = (q: number) => {
    const target = q * count;
    let seen = 0;
    for (let b = 0; b < bins; b++) {
      seen += histogram[b]!;
      if (seen >= target) return min + b / scale;
    }
    return max;
  };
  const lo = quantile(0.005);
  const hi = Math.max(quantile(0.995), lo + 1e-6);
  return { center: (lo + hi) / 2, width: hi - lo };
}

