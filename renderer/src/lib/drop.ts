/**
 * Drag-and-drop of studies. A page cannot learn a dropped file's path by itself: in Electron the
 * preload can (api.openDropped); in browser mode the services run on the server, so only a
 * dragged path (text) can name a study there.
 */
import type { Session } from './session.svelte.ts';

/** Returns the path that was opened (for the path field), or null. */
export async function openDrop(data: DataTransfer | null, session: Session): Promise<string | null> {
  const file = data?.files[0];
  if (file) {
    if (session.api.openDropped) {
      await session.openDropped(file);
      return null;
    }
    session.error = `${file.name}: in browser mode the study must be on the server; type its path, or drop the path as text`;
    return null;
  }
  const text = data?.getData('text/plain')?.trim();
  if (!text) {
    session.error = 'drop a study file or folder (or its path)';
    return null;
  }
  const path = text.replace(/^file:\/\//, '');
  await session.open(path);
  return path;
}
