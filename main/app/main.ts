/**
 * The Electron main process, compiled with the whole core by scripts/build-app.mjs into
 * dist/app/main.cjs (no TypeScript runs in the shipped app). It owns the window, the app://
 * protocol serving the built renderer, and the IPC channel. The core finds its worker bundles
 * and model folder from its modules' source locations, which the build keeps (see there).
 */
import { BrowserWindow, Menu, MessageChannelMain, app, dialog, ipcMain, protocol, safeStorage, session, shell } from 'electron';
import type { IpcMainInvokeEvent } from 'electron';
import { join, resolve } from 'node:path';
import type { ExportFormat, MenuAction } from '../core/api.ts';
import { readStatic, rendererCsp } from '../core/renderer-files.ts';
import { createAppWiring, type AppWiring } from './ipc.ts';
import { RENDERER_ORIGIN, secureWebPreferences } from './window-options.ts';
import { guardWebContents, refusePermissionCheck, refusePermissionRequest } from './guards.ts';
import { CONNECT_CHANNEL, PORT_CHANNEL } from './preload-api.ts';

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
  return createAppWiring({
    modelsDir: join(root, 'models'),
    settingsFile: join(app.getPath('userData'), 'settings.json'),
    trainingDir: join(app.getPath('userData'), 'training'),
    samplesDir: join(app.getPath('userData'), 'samples'),
    // PACS passwords and tokens: encrypted with the OS keychain's key (safeStorage), never in settings.json
    pacsSecretsFile: join(app.getPath('userData'), 'pacs-secrets.json'),
    pacsCipher: {
      available: () => safeStorage.isEncryptionAvailable(),
      encrypt: (plain) => safeStorage.encryptString(plain),
      decrypt: (sealed) => safeStorage.decryptString(Buffer.from(sealed)),
    },
    pacsCacheDir: join(app.getPath('userData'), 'pacs-cache'),
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

  // The handshake, the only invoke: a page of the app's own gets its channel on a fresh port;
  // every call, reply and event then goes down that one port, in order.
  const connections = new Map<number, () => void>();
  ipcMain.handle(CONNECT_CHANNEL, (event: IpcMainInvokeEvent) => {
    const { port1, port2 } = new MessageChannelMain();
    const disconnect = wiring.connect(event.senderFrame?.url ?? '', port1);
    if (!disconnect) {
      port1.close();
      throw new Error('calls are only accepted from the workstation renderer');
    }
    const id = event.sender.id;
    // a reload makes a new connection; the old one goes with its page
    connections.get(id)?.();
    connections.set(id, disconnect);
    event.sender.once('destroyed', () => connections.get(id) === disconnect && (disconnect(), connections.delete(id)));
    event.sender.postMessage(PORT_CHANNEL, null, [port2]);
  });
  Menu.setApplicationMenu(applicationMenu((action) => wiring.service.emitMenu(action)));

  mainWindow = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'SAM2-UNet Workstation',
    backgroundColor: '#111417',
    webPreferences: secureWebPreferences(join(__dirname, 'preload.cjs')),
  });
  // window-open, navigation and webview guards: installed by 'web-contents-created' above
  mainWindow.on('closed', () => {
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
