/**
 * Window/level presets of a sequence. MRI has no absolute intensity scale (unlike CT's HU), so
 * the presets are relative to the sequence's robust default window and its value range.
 */
import type { DisplayWindow, SequenceSummary } from '../../../main/core/api.ts';

export interface WindowPreset {
  name: string;
  /** the key that applies it (keyboard shortcut) */
  key: string;
  window: DisplayWindow;
}

export function windowPresets(sequence: SequenceSummary): WindowPreset[] {
  const { center, width } = sequence.window;
  const [lo, hi] = sequence.range;
  return [
    { name: 'Default', key: '1', window: { center, width } },
    { name: 'Full range', key: '2', window: { center: (lo + hi) / 2, width: Math.max(1e-6, hi - lo) } },
    { name: 'High contrast', key: '3', window: { center, width: width / 2 } },
    { name: 'Bright lesions', key: '4', window: { center: center + width / 4, width: width / 2 } },
  ];
}
