/**
 * The Electron main process (bundled by scripts/build-app.mjs to dist/app/main.cjs). It owns the
 * window, the app:// protocol serving the built renderer, and the IPC channel; the core
 * services are loaded from source through tsx at start-up, exactly as the CLI runs them (they
 * locate their worker entry points and model folders from their own file URLs).
 */
import { BrowserWindow, Menu, MessageChannelMain, app, dialog, ipcMain, protocol, session, shell } from 'electron';
import type { IpcMainInvokeEvent } from 'electron';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ExportFormat, MenuAction } from '../core/api.ts';
import { readStatic, rendererCsp } from '../web/static.ts';
import type { AppWiring } from './ipc.ts';
import { RENDERER_ORIGIN, secureWebPreferences } from './window-options.ts';
import { guardWebContents, refusePermissionCheck, refusePermissionRequest } from './guards.ts';
import { CALL_CHANNEL, DROP_CHANNEL, EVENT_CHANNEL } from './preload-api.ts';

const root = resolve(__dirname, '../..');
const rendererDir = join(root, 'renderer/dist');
const log = (line: string) => process.stderr.write(`sam2unet: ${line}\n`);

// every renderer sandboxed, whatever a window's own preferences say (must precede 'ready')
app.enableSandbox();
// every web contents ever created (windows, frames, webviews), not only the main window
app.on('web-contents-created', (_event, contents) => guardWebContents(contents, log));

protocol.registerSchemesAsPrivileged([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

const FILTERS: Record<ExportFormat, Electron.FileFilter[]> = {
  nifti: [{ name: 'NIfTI', extensions: ['nii.gz', 'nii'] }],
  'dicom-seg': [{ name: 'DICOM SEG', extensions: ['dcm'] }],
  report: [{ name: 'Report', extensions: ['html', 'pdf', 'csv', 'json'] }],
};

async function loadWiring(window: () => BrowserWindow | null, initialPaths: string[]): Promise<AppWiring> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { register } = require('tsx/esm/api') as typeof import('tsx/esm/api');
  register();
  const { createAppWiring } = (await import(pathToFileURL(join(root, 'main/app/ipc.ts')).href)) as typeof import('./ipc.ts');
  return createAppWiring({
    modelsDir: join(root, 'models'),
    settingsFile: join(app.getPath('userData'), 'settings.json'),
    trainingDir: join(app.getPath('userData'), 'training'),
    samplesDir: join(app.getPath('userData'), 'samples'),
    reviewedDir: join(app.getPath('userData'), 'reviewed'),
    initialPaths,
    log,
    showModelDialog: async () => {
      const owner = window();
      const options: Electron.OpenDialogOptions = {
        title: 'Add a SAM2-UNet checkpoint',
        properties: ['openFile'],
        filters: [{ name: 'Checkpoints', extensions: ['pth', 'pt', 'safetensors'] }],
      };
      const result = owner ? await dialog.showOpenDialog(owner, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
    showOpenDialog: async () => {
      const owner = window();
      // Linux and Windows cannot offer files and folders in one dialog: folders (BraTS cases,
      // DICOM series) are the common case; single NIfTI files can be typed or dropped as paths.
      const options: Electron.OpenDialogOptions = { title: 'Open a study', properties: process.platform === 'darwin' ? ['openFile', 'openDirectory'] : ['openDirectory'] };
      const result = owner ? await dialog.showOpenDialog(owner, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
    // an exported report opens in the system's browser (HTML) or PDF viewer
    openPath: async (file) => {
      const problem = await shell.openPath(file);
      if (problem) throw new Error(`cannot open ${file}: ${problem}`);
    },
    showSaveDialog: async (suggestedName, format) => {
      const owner = window();
      const options = { defaultPath: join(app.getPath('documents'), suggestedName), filters: FILTERS[format] };
      const result = owner ? await dialog.showSaveDialog(owner, options) : await dialog.showSaveDialog(options);
      return result.canceled || !result.filePath ? null : result.filePath;
    },
  });
}

/** The usual menus and shortcuts; actions the page handles are sent to it as `menu` events. */
function applicationMenu(send: (action: MenuAction) => void): Menu {
  const item = (label: string, accelerator: string, action: MenuAction): Electron.MenuItemConstructorOptions => ({ label, accelerator, click: () => send(action) });
  const isMac = process.platform === 'darwin';
  return Menu.buildFromTemplate([
    ...(isMac ? [{ role: 'appMenu' as const }] : []),
    {
      label: 'File',
      submenu: [
        item('Open Study…', 'CmdOrCtrl+O', 'open'),
        item('Export…', 'CmdOrCtrl+E', 'export'),
        { type: 'separator' },
        item('Settings…', 'CmdOrCtrl+,', 'settings'),
        { type: 'separator' },
        isMac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'Segmentation',
      submenu: [item('Segment', 'CmdOrCtrl+Enter', 'segment'), item('Train…', 'CmdOrCtrl+Shift+T', 'train'), item('Toggle Overlay', 'CmdOrCtrl+Shift+O', 'toggleOverlay')],
    },
    {
      label: 'View',
      submenu: [{ role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' }, ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' as const }])],
    },
    { role: 'windowMenu' },
  ]);
}

async function start(): Promise<void> {
  await app.whenReady();
  let mainWindow: BrowserWindow | null = null;
  const initial = process.argv.find((arg, i) => i > 0 && arg.startsWith('--open='))?.slice('--open='.length);
  const wiring = await loadWiring(() => mainWindow, initial ? [resolve(initial)] : []);

  protocol.handle('app', async (request) => {
    const url = new URL(request.url);
    if (url.host !== 'renderer') return new Response('not found', { status: 404 });
    const file = await readStatic(rendererDir, url.pathname);
    if (!file) return new Response('not found', { status: 404 });
    return new Response(new Uint8Array(file.body), {
      headers: { 'Content-Type': file.type, 'Content-Security-Policy': rendererCsp(), 'X-Content-Type-Options': 'nosniff' },
    });
  });

  // Nothing in the renderer needs a camera, notifications or the like.
  session.defaultSession.setPermissionRequestHandler(refusePermissionRequest);
  session.defaultSession.setPermissionCheckHandler(refusePermissionCheck);

  ipcMain.handle(CALL_CHANNEL, (event: IpcMainInvokeEvent, method: unknown, request: unknown) =>
    wiring.handleCall(event.senderFrame?.url ?? '', method, request),
  );
  ipcMain.handle(DROP_CHANNEL, (event: IpcMainInvokeEvent, path: unknown) => wiring.handleDrop(event.senderFrame?.url ?? '', path));
  Menu.setApplicationMenu(applicationMenu((action) => wiring.service.emitMenu(action)));

  mainWindow = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'SAM2-UNet Workstation',
    backgroundColor: '#111417',
    webPreferences: secureWebPreferences(join(__dirname, 'preload.cjs')),
  });
  // window-open, navigation and webview guards: installed by 'web-contents-created' above
  // Events stream over a MessagePort of their own, handed to the page (re)loaded in the window.
  let disconnect: (() => void) | undefined;
  mainWindow.webContents.on('did-finish-load', () => {
    disconnect?.();
    const { port1, port2 } = new MessageChannelMain();
    mainWindow?.webContents.postMessage(EVENT_CHANNEL, null, [port2]);
    disconnect = wiring.connectEvents({ postMessage: (message) => port1.postMessage(message) }, { transferBuffers: false });
    port1.start();
  });
  mainWindow.on('closed', () => {
    disconnect?.();
    mainWindow = null;
  });
  await mainWindow.loadURL(`${RENDERER_ORIGIN}/index.html${initial ? `?open=${encodeURIComponent(resolve(initial))}` : ''}`);

  app.on('window-all-closed', () => {
    void wiring.service.dispose().finally(() => app.quit());
  });
}

start().catch((err: unknown) => {
  log(`could not start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  app.exit(1);
});
