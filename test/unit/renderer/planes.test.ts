// The views' geometry (renderer/src/lib/planes.ts): orientation letters and markers, the
// radiological / neurological layouts, and the scale bar. Pure functions: no DOM needed.
import { describe, expect, it } from 'vitest';
import type { Vec3 } from '../../../main/core/api.ts';
import { VIEWS, orientationLetters, pixelOf, planeAxes, planeGeometry, scaleBar, viewMarkers, voxelAt } from '../../../renderer/src/lib/planes.ts';
import type { Grid, ViewName } from '../../../renderer/src/lib/planes.ts';

const grid = (direction: number[], dims: Vec3 = [240, 240, 155]): Grid => ({ dims, spacing: [1, 1, 1], origin: [0, -239, 0], direction });
const IDENTITY = [1, 0, 0, 0, 1, 0, 0, 0, 1];
/** BraTS files as nibabel writes them: RAS+ index axes, i.e. −x and −y in LPS */
const RAS = [-1, 0, 0, 0, -1, 0, 0, 0, 1];

/** Markers of a view as the camera would show it: screen right = the image's row direction, screen down its column direction. */
function markersOf(g: Grid, view: ViewName, convention?: 'radiological' | 'neurological') {
  const geometry = planeGeometry(g, planeAxes(g, view, convention), 0);
  return viewMarkers(geometry.rowCosines, geometry.columnCosines);
}

describe('orientation letters', () => {
  it('names the LPS axes and their ends', () => {
    expect(orientationLetters([1, 0, 0])).toBe('L');
    expect(orientationLetters([-1, 0, 0])).toBe('R');
    expect(orientationLetters([0, 1, 0])).toBe('P');
    expect(orientationLetters([0, -1, 0])).toBe('A');
    expect(orientationLetters([0, 0, 1])).toBe('S');
    expect(orientationLetters([0, 0, -2])).toBe('I');
  });

  it('names oblique directions strongest axis first, leaving out small parts', () => {
    expect(orientationLetters([0.8, -0.6, 0])).toBe('LA');
    expect(orientationLetters([-0.5, 0, 0.86])).toBe('SR');
    expect(orientationLetters([0.99, 0.1, 0])).toBe('L');
    expect(orientationLetters([0, 0, 0])).toBe('');
  });

  it('puts the opposite letters on opposite edges', () => {
    expect(viewMarkers([1, 0, 0], [0, 1, 0])).toEqual({ left: 'R', right: 'L', top: 'A', bottom: 'P' });
  });
});

describe('view layouts and their markers', () => {
  const radiological = { axial: { left: 'R', right: 'L', top: 'A', bottom: 'P' }, coronal: { left: 'R', right: 'L', top: 'S', bottom: 'I' }, sagittal: { left: 'A', right: 'P', top: 'S', bottom: 'I' } };
  const neurological = { ...radiological, axial: { ...radiological.axial, left: 'L', right: 'R' }, coronal: { ...radiological.coronal, left: 'L', right: 'R' } };

  it.each([
    ['LPS index axes', IDENTITY],
    ['RAS index axes (flipped x and y)', RAS],
    ['flipped z', [1, 0, 0, 0, 1, 0, 0, 0, -1]],
  ])('radiological by default, neurological on request, whatever the direction: %s', (_name, direction) => {
    const g = grid(direction);
    for (const view of VIEWS) {
      expect(markersOf(g, view), view).toEqual(radiological[view]);
      expect(markersOf(g, view, 'neurological'), view).toEqual(neurological[view]);
    }
  });

  it('names a rotated acquisition by what is really on the edges', () => {
    // index x turned 30° from L towards A (about S), index y with it
    const c = Math.cos(Math.PI / 6);
    const s = Math.sin(Math.PI / 6);
    const g = grid([c, s, 0, -s, c, 0, 0, 0, 1]);
    expect(markersOf(g, 'axial')).toEqual({ left: 'RP', right: 'LA', top: 'AR', bottom: 'PL' });
  });

  it('mirrors only the columns: voxel ↔ pixel stays one mapping', () => {
    const g = grid(RAS, [10, 12, 7]);
    const radio = planeAxes(g, 'axial');
    const neuro = planeAxes(g, 'axial', 'neurological');
    expect(neuro.col.flip).toBe(!radio.col.flip);
    expect(neuro.row).toEqual(radio.row);
    const ijk: Vec3 = [2, 5, 3];
    const p = pixelOf(g, neuro, ijk);
    expect(voxelAt(g, neuro, p.c, p.r, p.s)).toEqual(ijk);
    expect(p.c).toBe(10 - 1 - pixelOf(g, radio, ijk).c);
    expect(planeAxes(g, 'sagittal', 'neurological')).toEqual(planeAxes(g, 'sagittal'));
  });
});

describe('scale bar', () => {
  it('is the longest 1, 2 or 5 × 10ⁿ mm that fits', () => {
    // a 240 mm field of view over 349 pixels, a quarter of the view at most
    expect(scaleBar(240 / 349, 349 / 4)).toEqual({ mm: 50, pixels: 50 / (240 / 349) });
    expect(scaleBar(0.1, 87)?.mm).toBe(5);
    expect(scaleBar(2, 100)?.mm).toBe(200);
    expect(scaleBar(1, 99)?.mm).toBe(50);
    expect(scaleBar(1, 100)?.mm).toBe(100);
    expect(scaleBar(0, 100)).toBeNull();
    expect(scaleBar(1, 0)).toBeNull();
  });
});
