/**
 * The Electron main process's guards, free of Electron imports so that tests call them directly:
 * - what a drop may make readable (exactly the dropped file or folder, never a filesystem root,
 *   the home folder itself, an ancestor of it, or a system folder);
 * - the handlers every web contents gets (windows, frames, webviews: not only the main window),
 *   so that nothing the app shows can navigate away, open windows or attach a webview;
 * - the permission request and check handlers (nothing is granted).
 */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { realPathOf } from '../core/read-roots.ts';
import { RENDERER_ORIGIN } from './window-options.ts';

/** Folders whose contents belong to the system, not to a study; on every platform we ship. */
const SYSTEM_FOLDERS = [
  '/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/opt', '/proc', '/root', '/run', '/sbin', '/snap', '/srv', '/sys', '/usr', '/var',
  '/Applications', '/Library', '/System', '/Volumes', '/cores', '/private', '/private/etc', '/private/var',
  'C:\\Windows', 'C:\\Program Files', 'C:\\Program Files (x86)', 'C:\\ProgramData', 'C:\\Users',
  '/home', '/Users',
];

const sameFolder = (a: string, b: string) => (process.platform === 'win32' || process.platform === 'darwin' ? a.toLowerCase() === b.toLowerCase() : a === b);

/**
 * Why a dropped path may not become readable, or null when it may. `home` is injectable for tests.
 * Decided on the real path (a symlink to / is /).
 */
export function dropRefusal(path: string, home = homedir()): string | null {
  if (!isAbsolute(path)) return `${path} is not an absolute path`;
  let info;
  try {
    info = statSync(path);
  } catch {
    return `${path} does not exist`;
  }
  if (!info.isFile() && !info.isDirectory()) return `${path} is neither a file nor a folder`;
  const real = realPathOf(path);
  if (dirname(real) === real) return `${path} is the root of a file system`;
  const realHome = realPathOf(home);
  if (sameFolder(real, realHome)) return `${path} is the home folder itself; drop the study folder instead`;
  // an ancestor of the home folder (/home, /Users) would hold every user's files
  if (info.isDirectory() && sameFolder(resolve(realHome, '..'), real)) return `${path} holds the users' home folders`;
  for (const system of SYSTEM_FOLDERS) {
    if (sameFolder(real, system) || sameFolder(real, realPathOf(system))) return `${path} is a system folder`;
  }
  return null;
}

/** Where the app's own pages may go: only its renderer. */
export function navigationAllowed(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'app:' && parsed.host === 'renderer';
  } catch {
    return false;
  }
}

/** What web contents look like to the guards (Electron's WebContents has all of these). */
export interface GuardedContents {
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void;
  on(event: 'will-navigate' | 'will-frame-navigate' | 'will-redirect', listener: (event: { preventDefault(): void; url?: string }, url?: string) => void): unknown;
  on(event: 'will-attach-webview', listener: (event: { preventDefault(): void }) => void): unknown;
}

/**
 * Installs the guards on one web contents; main.ts calls it from 'web-contents-created', so
 * every window, frame and webview the app ever has gets them, not just the main window.
 */
export function guardWebContents(contents: GuardedContents, log: (line: string) => void = () => {}): void {
  contents.setWindowOpenHandler(({ url }) => {
    log(`refused to open a window for ${url.slice(0, 200)}`);
    return { action: 'deny' };
  });
  const stay = (event: { preventDefault(): void; url?: string }, url?: string) => {
    const target = url ?? event.url ?? '';
    if (!navigationAllowed(target)) {
      event.preventDefault();
      log(`refused navigation to ${target.slice(0, 200)}`);
    }
  };
  contents.on('will-navigate', stay);
  contents.on('will-frame-navigate', stay);
  contents.on('will-redirect', stay);
  contents.on('will-attach-webview', (event) => {
    event.preventDefault();
    log('refused to attach a webview');
  });
}

/** Nothing in the renderer needs a camera, notifications, the clipboard or the like. */
export const refusePermissionRequest = (_contents: unknown, _permission: string, callback: (granted: boolean) => void): void => callback(false);
export const refusePermissionCheck = (): boolean => false;

export { RENDERER_ORIGIN };
