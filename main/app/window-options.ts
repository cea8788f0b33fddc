/**
 * The main window's security settings, apart from main.ts so that a test can assert them
 * without Electron: the page gets no Node, runs sandboxed in its own JavaScript world, and
 * reaches the services only through the preload's api.
 */
export function secureWebPreferences(preload: string) {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    spellcheck: false,
  } as const;
}

/** The only origin the window may show. */
export const RENDERER_ORIGIN = 'app://renderer';
