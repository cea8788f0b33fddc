/**
 * The Electron main process's service wiring, free of Electron imports so that tests call it
 * directly: the api service with the save-dialog path guard, and the page's channel
 * (rpc/channel.ts over the MessagePort handed to the page at its handshake): every call checked
 * against the contract (api.ts) before anything runs, replies and events on the one port.
 */
import type { ExportFormat } from '../core/api.ts';
import type { Ports } from '../core/api-ports.ts';
import { WorkstationService } from '../core/api-service.ts';
import { replyValue, type ChannelMessage, type Reply } from '../core/rpc/channel.ts';
import { apiDispatcher, serveApi } from '../core/rpc/api-channel.ts';
import { ForbiddenError, InvalidRequestError, encodeError } from '../core/rpc/errors.ts';
import { electronPortTransport, type ElectronPortLike } from '../core/rpc/ports.ts';
import { s } from '../core/schema.ts';
import { SettingsStore } from '../core/settings.ts';
import { ExportPathGuard } from './export-guard.ts';
import { dropRefusal } from './guards.ts';
import { DEFAULT_MODEL_DIR } from '../core/jobs/bundled.ts';
import { ReadRoots } from '../core/read-roots.ts';
import { UserError } from '../core/errors.ts';
import { withReadScope } from '../core/util/fs.ts';
import { RENDERER_ORIGIN } from './window-options.ts';
import { GRANT_DROP } from './preload-api.ts';
import { FileSecretStore, type SecretCipher } from '../core/pacs/connection.ts';

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
  /** PACS secrets: this file, each value sealed by the cipher (Electron's safeStorage); absent = in memory */
  pacsSecretsFile?: string;
  pacsCipher?: SecretCipher;
  /** the instance cache of studies opened from a PACS (readable like the samples folder) */
  pacsCacheDir?: string;
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
  /**
   * The page's handshake: a trusted page gets its channel served on `port` (the main side of the
   * MessageChannelMain whose other end goes to the page). Returns the disconnect, or null when
   * the sender is refused.
   */
  connect(senderUrl: string, port: ElectronPortLike): (() => void) | null;
  /** one call as the page's channel runs it (the sender checked, the request validated) */
  handleCall(senderUrl: string, method: unknown, request: unknown): Promise<Reply>;
  /**
   * What the preload's `grantDrop` call runs: the preload sends the path of a file the user
   * dropped (only a real dropped file has one), which becomes readable.
   */
  handleDrop(senderUrl: string, path: unknown): Promise<Reply>;
}

const droppedPath = s.string({ nonEmpty: true });

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

function compactMessage(message: ChannelMessage): ChannelMessage {
  return message.kind === 'reply' ? ({ kind: 'reply', id: message.id, ...compactArrays(message) } as ChannelMessage) : message;
}

const forbidden = (): Reply => ({ ok: false, error: encodeError(new ForbiddenError('calls are only accepted from the workstation renderer')) });

export function createAppWiring(options: AppServiceOptions): AppWiring {
  const guard = new ExportPathGuard();
  const roots = new ReadRoots([
    ...(options.modelsDir ? [options.modelsDir] : []),
    ...(options.trainingDir ? [options.trainingDir] : []),
    ...(options.samplesDir ? [options.samplesDir] : []),
    ...(options.pacsCacheDir ? [options.pacsCacheDir] : []),
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
    ...(options.pacsSecretsFile ? { pacsSecrets: new FileSecretStore(options.pacsSecretsFile, options.pacsCipher) } : {}),
    ...(options.pacsCacheDir ? { pacsCacheDir: options.pacsCacheDir } : {}),
  });
  // what the user opened or added in earlier sessions stays readable
  const ready = Promise.all([settings.recent(), settings.models()]).then(([recent, models]) => {
    for (const study of recent) roots.grant(study.path);
    for (const model of models) roots.grant(model);
  });
  const around = async <T>(run: () => Promise<T>): Promise<T> => {
    await ready;
    return withReadScope(roots.scope(), run);
  };
  const api = apiDispatcher(service, { log: options.log, around });

  async function handleDrop(senderUrl: string, path: unknown): Promise<Reply> {
    if (!isTrustedSender(senderUrl)) return forbidden();
    const problem = droppedPath(path, 'path');
    if (problem) {
      options.log(`refused a drop: ${problem}`);
      return { ok: false, error: encodeError(new InvalidRequestError(`invalid request: ${problem}`)) };
    }
    // a drop grants exactly what was dropped, and never a root, the home folder or a system folder
    const refusal = dropRefusal(path as string, options.homeDir);
    if (refusal) {
      options.log(`refused a drop: ${refusal}`);
      return { ok: false, error: encodeError(new UserError(`cannot open what was dropped: ${refusal}`)) };
    }
    return { ok: true, value: { path: roots.grant(path as string) } };
  }

  return {
    service,
    guard,
    roots,
    ready,
    handleDrop,
    async handleCall(senderUrl, method, request) {
      if (!isTrustedSender(senderUrl)) {
        options.log(`refused a call from ${senderUrl.slice(0, 200)}`);
        return forbidden();
      }
      return compactArrays(await api.handle(method, request));
    },
    connect(senderUrl, port) {
      if (!isTrustedSender(senderUrl)) {
        options.log(`refused a connection from ${senderUrl.slice(0, 200)}`);
        return null;
      }
      // the page's API and the preload's one privileged call, on the page's one channel
      const dispatcher = apiDispatcher(service, { log: options.log, around }, { [GRANT_DROP]: async (path) => replyValue(await handleDrop(senderUrl, path)) });
      return serveApi(electronPortTransport(port, compactMessage), service, dispatcher, [GRANT_DROP]);
    },
  };
}
