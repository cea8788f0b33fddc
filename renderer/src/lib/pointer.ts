/**
 * What a pointer gesture on a view means, in one place (the viewport component only forwards
 * events): left drag windows, a left click moves the crosshair there, shift/middle drag pans,
 * ctrl/right drag zooms; the wheel steps slices, ctrl+wheel zooms.
 */
export type Gesture = 'window' | 'pan' | 'zoom';

export function gestureOf(event: PointerEvent): Gesture {
  if (event.button === 1 || (event.button === 0 && event.shiftKey)) return 'pan';
  if (event.button === 2 || (event.button === 0 && (event.ctrlKey || event.metaKey))) return 'zoom';
  return 'window';
}

/** A press that moved less than this (CSS pixels) is a click. */
export const CLICK_SLOP = 3;

/** Window change for a drag of (dx, dy) from `start`: horizontal widens, vertical lowers the level. */
export function dragWindow(start: { center: number; width: number }, dx: number, dy: number) {
  const scale = start.width / 256;
  return { center: start.center - dy * scale, width: start.width + dx * scale };
}

/** Zoom factor for a vertical drag step (up magnifies) or a wheel notch. */
export const zoomFactor = (dy: number) => Math.exp(-dy / 200);
