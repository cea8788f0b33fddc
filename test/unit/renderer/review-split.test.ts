import { describe, expect, it } from 'vitest';
import type { ReviewedStudy } from '../../../main/core/api.ts';
import { autoSplit } from '../../../renderer/src/lib/review-split.ts';

const study = (name: string, trainable = true): ReviewedStudy => ({ name, dir: `/r/${name}`, reviewedAt: '2026-01-01T00:00:00Z', reviewer: 'a', startingMask: 'x', trainable });

describe('the automatic split of the reviewed studies', () => {
  it('holds out a fifth (at least one, the last by name), trains on the rest, skips what the trainer cannot read', () => {
    expect(autoSplit([study('c'), study('a'), study('b')])).toEqual({ a: 'train', b: 'train', c: 'heldOut' });
    const ten = autoSplit(Array.from({ length: 10 }, (_, i) => study(`case${i}`)));
    expect(Object.entries(ten).filter(([, r]) => r === 'heldOut').map(([n]) => n)).toEqual(['case8', 'case9']);
    expect(autoSplit([study('a'), study('b', false)])).toEqual({ a: 'train', b: 'skip' });
    expect(autoSplit([study('a'), study('b'), study('dicom', false)])).toEqual({ a: 'train', b: 'heldOut', dicom: 'skip' });
  });
});
