/**
 * Actions the application menu (the `menu` event), the keyboard and the deep link trigger, in
 * one place, so a shortcut and its menu item cannot do different things.
 */
import type { MenuAction } from '../../../main/core/api.ts';
import { expandChannels } from '../../../main/core/model/run-settings.ts';
import type { Session } from './session.svelte.ts';
import type { Training } from './training.svelte.ts';
import type { EditLabel, EditTool } from './editor.svelte.ts';

export function runMenuAction(action: MenuAction, session: Session, training: Training): void {
  switch (action) {
    case 'open':
      if (session.capabilities?.dialogs) void session.browse();
      else document.querySelector<HTMLInputElement>('[data-testid=open-path]')?.focus();
      break;
    case 'export':
      session.dialog = 'export';
      break;
    case 'segment':
      if (session.job?.status !== 'running') void session.segment();
      break;
    case 'train':
      training.panelOpen = true;
      void training.refreshRuns();
      break;
    case 'toggleOverlay':
      session.overlayVisible = !session.overlayVisible;
      break;
    case 'settings':
      session.dialog = 'settings';
      break;
  }
}

export interface Shortcut {
  keys: string;
  what: string;
}

/** The keyboard reference shown in the help (the handler below is the behaviour). */
export const SHORTCUTS: Shortcut[] = [
  { keys: '↑ / ↓, wheel', what: 'next / previous slice in the active view' },
  { keys: 'PgUp / PgDn', what: '10 slices' },
  { keys: 'Home / End', what: 'first / last slice' },
  { keys: 'O', what: 'overlay on / off' },
  { keys: 'C', what: 'crosshair on / off' },
  { keys: '1 – 4', what: 'window/level presets' },
  { keys: 'R', what: 'reset window/level' },
  { keys: 'click', what: 'move the crosshair (other views follow)' },
  { keys: 'drag', what: 'window/level' },
  { keys: 'shift-drag, middle drag', what: 'pan' },
  { keys: 'ctrl-drag, right drag, ctrl-wheel', what: 'zoom' },
  { keys: 'B / E / T', what: 'brush / eraser / threshold brush (drag to paint)' },
  { keys: 'F / I', what: 'flood fill / remove island (click)' },
  { keys: 'Shift+F', what: "fill holes in the active view's slice" },
  { keys: 'N', what: 'interpolate the label between the two slices last drawn on' },
  { keys: 'Esc', what: 'no tool (back to window/level)' },
  { keys: 'Shift+1 / 2 / 4', what: 'paint necrotic core / edema / enhancing' },
  { keys: '[ / ]', what: 'brush smaller / larger (1 mm; with Shift 5 mm)' },
  { keys: 'S', what: 'brush: disk in the plane ↔ sphere' },
  { keys: 'V / K', what: 'hide / lock the chosen label' },
  { keys: 'Ctrl+Z, Ctrl+Shift+Z (Ctrl+Y)', what: 'undo, redo' },
  { keys: 'Ctrl+S', what: 'save as reviewed' },
];

const TOOL_KEYS: Record<string, EditTool> = { b: 'brush', e: 'eraser', t: 'threshold', f: 'fill', i: 'island' };
const LABEL_CODES: Record<string, EditLabel> = { Digit1: 1, Digit2: 2, Digit4: 4, Numpad1: 1, Numpad2: 2, Numpad4: 4 };

/** The editor's shortcuts with Ctrl (undo, redo, save); true when it was one. */
function editCommand(event: KeyboardEvent, session: Session): boolean {
  const editor = session.editor;
  const key = event.key.toLowerCase();
  if (key === 'z' && !event.shiftKey) editor.undo();
  else if ((key === 'z' && event.shiftKey) || key === 'y') editor.redo();
  else if (key === 's') void editor.saveReviewed();
  else return false;
  return true;
}

/** The editor's plain keys; true when it was one. */
function editKey(event: KeyboardEvent, session: Session): boolean {
  const editor = session.editor;
  const key = event.key.toLowerCase();
  if (event.shiftKey && event.code in LABEL_CODES) editor.label = LABEL_CODES[event.code]!;
  else if (event.shiftKey && key === 'f') editor.fillHoles();
  else if (!event.shiftKey && key in TOOL_KEYS) editor.choose(TOOL_KEYS[key]!);
  else if (key === 'escape' && editor.tool) editor.choose(null);
  else if (key === 'n') editor.interpolate();
  else if (event.key === '[' || event.key === '{') editor.setSize(editor.sizeMm - (event.shiftKey ? 5 : 1));
  else if (event.key === ']' || event.key === '}') editor.setSize(editor.sizeMm + (event.shiftKey ? 5 : 1));
  else if (key === 's') editor.shape = editor.shape === 'disk' ? 'sphere' : 'disk';
  else if (key === 'v') editor.toggleHidden(editor.label);
  else if (key === 'k') editor.toggleLocked(editor.label);
  else return false;
  return true;
}

const STEPS: Record<string, number> = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };

/** Handles a key press on the page; returns true when it was a shortcut. */
export function handleShortcut(event: KeyboardEvent, session: Session, training: Training): boolean {
  // typing fields, selects, sliders and open dialogs keep their own keys
  const target = event.target;
  if (target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return false;
  if (target instanceof HTMLInputElement && !['checkbox', 'radio', 'button'].includes(target.type)) return false;
  if (session.dialog !== null || session.leaving !== null || event.altKey || !session.study) return false;
  if (event.ctrlKey || event.metaKey) {
    if (!editCommand(event, session)) return false;
    event.preventDefault();
    return true;
  }
  const view = session.activeView;
  if (editKey(event, session)) {
    event.preventDefault();
    return true;
  }
  if (event.key in STEPS) session.step(view, STEPS[event.key]!);
  else if (event.key === 'Home') session.setSliceOf(view, 0);
  else if (event.key === 'End') session.setSliceOf(view, session.sliceCountOf(view) - 1);
  else if (event.key === 'o' || event.key === 'O') runMenuAction('toggleOverlay', session, training);
  else if (event.key === 'c' || event.key === 'C') session.showCrosshair = !session.showCrosshair;
  else if (event.key === 'r' || event.key === 'R') session.resetWindow();
  else if (/^[1-4]$/.test(event.key)) session.applyPreset(Number(event.key) - 1);
  else return false;
  event.preventDefault();
  return true;
}

/**
 * Browser-mode deep link: `?open=<path on the server>` opens that study, then `&segment=default`
 * runs the bundled model on it, or `&segment=<checkpoint path>` that checkpoint; `&channels=a,b,c`
 * (or one name for all three) feeds those sequences to the model's channels (substitutes).
 */
export async function followDeepLink(search: string, session: Session): Promise<void> {
  const params = new URLSearchParams(search);
  const open = params.get('open');
  if (!open || !(await session.open(open))) return;
  const segment = params.get('segment');
  if (segment === null) return;
  // the run panel must show what ran, as after the Segment button: the link's checkpoint joins the
  // model list and is selected (a refused one stops here with its error shown), and its channels
  // become the panel's substitutes
  if (segment === 'default' || segment === '') session.selectBundledModel();
  else if (!(await session.addModel(segment))) return;
  const raw = params.get('channels');
  if (raw) {
    let picks: string[];
    try {
      picks = expandChannels(raw.split(','));
    } catch (err) {
      session.error = `the link's channels: ${err instanceof Error ? err.message : String(err)}`;
      return;
    }
    picks.forEach((sequence, channel) => session.chooseChannel(channel, sequence));
  }
  await session.segment();
}
