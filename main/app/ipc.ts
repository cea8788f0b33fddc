/**
 * The Electron main process's service wiring, free of Electron imports so that tests call it
 * directly: the api service with the save-dialog path guard, and the IPC call handler that
 * checks the sender and validates every message (api.ts) before anything runs.
 */
import type { ApiEvent, ExportFormat, Reply } from '../core/api.ts';
import { v } from '../core/api.ts';
import type { Ports } from '../core/api-ports.ts';
import { WorkstationService, dispatch } from '../core/api-service.ts';
import { SettingsStore } from '../core/settings.ts';
import { ExportPathGuard } from './export-guard.ts';
import { dropRefusal } from './guards.ts';
import { DEFAULT_MODEL_DIR } from '../core/jobs/bundled.ts';
import { ReadRoots } from '../core/read-roots.ts';
import { withReadScope } from '../core/util/fs.ts';
import { RENDERER_ORIGIN } from './window-options.ts';

export interface AppServiceOptions {
  /** shows the save dialog; resolves to the chosen path or null when the user cancelled */
  showSaveDialog: (suggestedName: string, format: ExportFormat) => Promise<string | null>;
  /** shows the open dialog for a study file or folder */
  showOpenDialog: () => Promise<string | null>;
  /** shows the open dialog for a checkpoint file */
  showModelDialog?: () => Promise<string | null>;
  /** opens a file with the system's default application (Electron's shell.openPath) */
  openPath?: (file: string) => Promise<void>;
  modelsDir?: string;
  /** settings, recent studies and added models (userData/settings.json); absent = in memory */
  settingsFile?: string;
  /** where training runs go (userData/training) */
  trainingDir?: string;
  /** where the sample study is generated (userData/samples) */
  samplesDir?: string;
  /** where studies saved as reviewed go (userData/reviewed) */
  reviewedDir?: string;
  /** paths the user named when starting the app (`--open`) */
  initialPaths?: string[];
  ports?: Ports;
  log: (line: string) => void;
  /** the user's home folder (a drop of it is refused); os.homedir() unless a test says otherwise */
  homeDir?: string;
}

export interface AppWiring {
  service: WorkstationService;
  guard: ExportPathGuard;
  roots: ReadRoots;
  /** resolves when the remembered roots (recent studies, added models) are loaded */
  ready: Promise<void>;
  /** the ipcMain.handle body for the call channel */
  handleCall(senderUrl: string, method: unknown, request: unknown): Promise<Reply>;
  /**
   * The ipcMain.handle body for the drop channel: the preload sends the path of a file the user
   * dropped (only a real dropped file has one), which becomes readable.
   */
  handleDrop(senderUrl: string, path: unknown): Promise<Reply>;
  /** streams the service's events over a port (see connectEventPort); returns the disconnect */
  connectEvents(port: EventPort, opts: { transferBuffers: boolean }): () => void;
}

/** The part of a MessagePort the event stream uses (Electron's MessagePortMain, Node's MessagePort). */
export interface EventPort {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
}

/**
 * Streams every service event over a MessagePort. Slice masks are handed over, not copied, where
 * the port can transfer ArrayBuffers (Node's MessagePort; the preload → page hop); Electron's
 * MessagePortMain only transfers ports, so there the 50-odd KB of a mask are cloned.
 */
export function connectEventPort(service: WorkstationService, port: EventPort, opts: { transferBuffers: boolean }): () => void {
  return service.onEvent((event: ApiEvent) => {
    if (opts.transferBuffers && event.type === 'sliceResult' && event.mask.buffer instanceof ArrayBuffer) port.postMessage(event, [event.mask.buffer]);
    else port.postMessage(event);
  });
}

const droppedPath = v.string({ nonEmpty: true });

/** Pages allowed to call the services: only the app's own renderer. */
export function isTrustedSender(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.origin === RENDERER_ORIGIN || (parsed.protocol === 'app:' && parsed.host === 'renderer');
  } catch {
    return false;
  }
}

/**
 * Electron's structured clone sends a typed array's whole ArrayBuffer; a volume that is a view
 * into a bigger buffer (a 4-D NIfTI's frames share one) is sent as just its own bytes. Volumes
 * in shared memory (as the reader worker hands them over) cannot cross to another process at
 * all: they are sent as a copy.
 */
function compactArrays(reply: Reply): Reply {
  if (!reply.ok || typeof reply.value !== 'object' || reply.value === null || !('data' in reply.value)) return reply;
  const data = (reply.value as { data: unknown }).data;
  if (!ArrayBuffer.isView(data)) return reply;
  const shared = data.buffer instanceof SharedArrayBuffer;
  if (!shared && data.byteLength === data.buffer.byteLength) return reply;
  // slice() on a typed array allocates a plain ArrayBuffer of just these bytes
  return { ok: true, value: { ...reply.value, data: (data as Uint8Array).slice() } };
}

const forbidden = (): Reply => ({ ok: false, error: { name: 'Forbidden', message: 'calls are only accepted from the workstation renderer', user: false } });

export function createAppWiring(options: AppServiceOptions): AppWiring {
  const guard = new ExportPathGuard();
  const roots = new ReadRoots([
    ...(options.modelsDir ? [options.modelsDir] : []),
    ...(options.trainingDir ? [options.trainingDir] : []),
    ...(options.samplesDir ? [options.samplesDir] : []),
    ...(options.reviewedDir ? [options.reviewedDir] : []),
    ...(options.initialPaths ?? []),
  ], { internal: [DEFAULT_MODEL_DIR] });
  const settings = new SettingsStore(options.settingsFile, options.log);
  const grantChosen = (chosen: string | null) => (chosen ? roots.grant(chosen) : null);
  const service = new WorkstationService({
    mode: 'electron',
    modelsDir: options.modelsDir,
    trainingDir: options.trainingDir,
    settings,
    ports: options.ports,
    log: options.log,
    chooseExportPath: async (suggestedName, format) => {
      const chosen = await options.showSaveDialog(suggestedName, format);
      return chosen ? guard.remember(chosen) : null;
    },
    chooseStudyPath: async () => grantChosen(await options.showOpenDialog()),
    ...(options.showModelDialog ? { chooseModelPath: async () => grantChosen(await options.showModelDialog!()) } : {}),
    checkReadable: (path) => roots.check(path),
    // the desktop app browses with the native dialog; a listing shows only the folders it may read
    browseRoots: () => roots.list(),
    ...(options.samplesDir ? { samplesDir: options.samplesDir } : {}),
    ...(options.reviewedDir ? { reviewedDir: options.reviewedDir } : {}),
    resolveExportPath: (request) => guard.take(request.path),
    ...(options.openPath ? { openPath: options.openPath } : {}),
  });
  // what the user opened or added in earlier sessions stays readable
  const ready = Promise.all([settings.recent(), settings.models()]).then(([recent, models]) => {
    for (const study of recent) roots.grant(study.path);
    for (const model of models) roots.grant(model);
  });
  return {
    service,
    guard,
    roots,
    ready,
    async handleCall(senderUrl, method, request) {
      if (!isTrustedSender(senderUrl)) {
        options.log(`refused a call from ${senderUrl.slice(0, 200)}`);
        return forbidden();
      }
      await ready;
      const reply = await withReadScope(roots.scope(), () => dispatch(service, method, request, options.log));
      return compactArrays(reply);
    },
    connectEvents: (port, opts) => connectEventPort(service, port, opts),
    async handleDrop(senderUrl, path) {
      if (!isTrustedSender(senderUrl)) return forbidden();
      const problem = droppedPath(path, 'path');
      if (problem) {
        options.log(`refused a drop: ${problem}`);
        return { ok: false, error: { name: 'InvalidRequest', message: `invalid request: ${problem}`, user: false } };
      }
      // a drop grants exactly what was dropped, and never a root, the home folder or a system folder
      const refusal = dropRefusal(path as string, options.homeDir);
      if (refusal) {
        options.log(`refused a drop: ${refusal}`);
        return { ok: false, error: { name: 'UserError', message: `cannot open what was dropped: ${refusal}`, user: true } };
      }
      return { ok: true, value: { path: roots.grant(path as string) } };
    },
  };
}
