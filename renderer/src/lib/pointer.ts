/**
 * What a pointer gesture on a view means, in one place (the viewport component only forwards
 * events): left drag windows, a left click moves the crosshair there, shift/middle drag pans,
 * ctrl/right drag zooms; the wheel steps slices, ctrl+wheel zooms. With an editing tool chosen,
 * a plain left press edits instead (paints a stroke, or fills / removes an island on click);
 * pan and zoom keep their buttons.
 */
import type { LabelColours } from '../../../main/core/conventions.ts';
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

/** Whether a press is the editing tool's (plain left button while a tool is chosen). */
export function editGesture(event: PointerEvent, tool: string | null): boolean {
  return tool !== null && event.button === 0 && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey;
}

/** The brush outline's colour: the label it paints, white for the eraser. */
export function brushColour(tool: string | null, label: number, colours: LabelColours): string {
  if (tool === 'eraser') return '#ffffff';
  return label === 1 ? colours.necrotic : label === 2 ? colours.edema : colours.enhancing;
}
