import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LABEL_COLOURS,
  DEFAULT_SETTINGS,
  hexToRgb,
  maskFileName,
  regionColourHex,
  rgbToHex,
  scoredDice,
  sliceLabel,
  sliceTicks,
  valueTicks,
} from '../../../main/core/conventions.ts';
import { DEFAULT_SETTINGS as STORE_DEFAULTS } from '../../../main/core/settings.ts';

describe('display conventions', () => {
  it('draws each region in the colour of the label it adds', () => {
    expect(regionColourHex('WT')).toBe(DEFAULT_LABEL_COLOURS.edema);
    expect(regionColourHex('TC')).toBe(DEFAULT_LABEL_COLOURS.necrotic);
    expect(regionColourHex('ET')).toBe(DEFAULT_LABEL_COLOURS.enhancing);
    expect(regionColourHex('foreground')).toBe(DEFAULT_LABEL_COLOURS.necrotic);
    expect(new Set(['WT', 'TC', 'ET'].map((r) => regionColourHex(r))).size).toBe(3);
    // the settings store starts from the same colours the renderer shows first
    expect(STORE_DEFAULTS).toBe(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS.labelColors).toEqual(DEFAULT_LABEL_COLOURS);
  });

  it('converts colours both ways and names a bad one', () => {
    expect(hexToRgb('#1e90ff')).toEqual([30, 144, 255]);
    expect(hexToRgb('#f00')).toEqual([255, 0, 0]);
    expect(rgbToHex(hexToRgb('#ffa500'))).toBe('#ffa500');
    expect(() => hexToRgb('red')).toThrow(/"red" is not a #rrggbb/);
  });

  it('numbers slices from 1 and puts ticks on round slice numbers, the first and the last', () => {
    expect(sliceLabel(40, 155)).toBe('slice 41/155');
    expect(sliceTicks(155)).toEqual([1, 20, 40, 60, 80, 100, 120, 140, 155]);
    expect(sliceTicks(24)).toEqual([1, 5, 10, 15, 20, 24]);
    expect(sliceTicks(1)).toEqual([1]);
    // the last tick is dropped rather than crowded against the previous one
    expect(sliceTicks(141)).toEqual([1, 20, 40, 60, 80, 100, 120, 140]);
    expect(valueTicks(5.02, 5.11, 3)).toEqual([5.05, 5.1]);
    expect(valueTicks(0, 1, 4)).toEqual([0, 0.5, 1]);
  });

  it('does not score a region absent from both masks', () => {
    expect(scoredDice({ tp: 0, fp: 0, fn: 0, dice: 1 })).toBeNull();
    expect(scoredDice({ tp: 0, fp: 3, fn: 0, dice: 0 })).toBe(0);
    expect(scoredDice({ tp: 5, fp: 1, fn: 1, dice: 10 / 12 })).toBeCloseTo(0.8333, 4);
    expect(scoredDice(undefined)).toBeNull();
  });

  it('never names a prediction like BraTS ground truth', () => {
    expect(maskFileName('BraTS20_Training_004', 'nifti')).toBe('BraTS20_Training_004_pred.nii.gz');
    expect(maskFileName('BraTS20_Training_004', 'dicom-seg')).toBe('BraTS20_Training_004_pred_seg.dcm');
    expect(maskFileName('BraTS20_Training_004', 'nifti', 'groundTruth')).toBe('BraTS20_Training_004_seg.nii.gz');
  });
});
