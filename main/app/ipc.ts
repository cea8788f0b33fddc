/**
 * The Electron main process's service wiring, free of Electron imports so that tests call it
 * directly: the api service with the save-dialog path guard, and the IPC call handler that
 * checks the sender and validates every message (api.ts) before anything runs.
 */
import type { ExportFormat, Reply } from '../core/api.ts';
import type { Ports } from '../core/api-ports.ts';
import { WorkstationService, dispatch } from '../core/api-service.ts';
import { ExportPathGuard } from './export-guard.ts';

export interface AppServiceOptions {
  /** shows the save dialog; resolves to the chosen path or null when the user cancelled */
  showSaveDialog: (suggestedName: string, format: ExportFormat) => Promise<string | null>;
  /** shows the open dialog for a study file or folder */
  showOpenDialog: () => Promise<string | null>;
  modelsDir?: string;
  ports?: Ports;
  log: (line: string) => void;
}

export interface AppWiring {
  service: WorkstationService;
  guard: ExportPathGuard;
  /** the ipcMain.handle body for the call channel */
  handleCall(senderUrl: string, method: unknown, request: unknown): Promise<Reply>;
}

/** Pages allowed to call the services: only the app's own renderer. */
export function isTrustedSender(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'app:' && parsed.host === 'renderer';
  } catch {
    return false;
  }
}

/**
 * Electron's structured clone sends a typed array's whole ArrayBuffer; a volume that is a view
 * into a bigger buffer (a 4-D NIfTI's frames share one) is sent as just its own bytes.
 */
function compactArrays(reply: Reply): Reply {
  if (!reply.ok || typeof reply.value !== 'object' || reply.value === null || !('data' in reply.value)) return reply;
  const data = (reply.value as { data: unknown }).data;
  if (!ArrayBuffer.isView(data) || data.byteLength === data.buffer.byteLength) return reply;
  return { ok: true, value: { ...reply.value, data: (data as Uint8Array).slice() } };
}

export function createAppWiring(options: AppServiceOptions): AppWiring {
  const guard = new ExportPathGuard();
  const service = new WorkstationService({
    mode: 'electron',
    modelsDir: options.modelsDir,
    ports: options.ports,
    log: options.log,
    chooseExportPath: async (suggestedName, format) => {
      const chosen = await options.showSaveDialog(suggestedName, format);
      return chosen ? guard.remember(chosen) : null;
    },
    chooseStudyPath: options.showOpenDialog,
    resolveExportPath: (request) => guard.take(request.path),
  });
  return {
    service,
    guard,
    async handleCall(senderUrl, method, request) {
      if (!isTrustedSender(senderUrl)) {
        options.log(`refused a call from ${senderUrl.slice(0, 200)}`);
        return { ok: false, error: { name: 'Forbidden', message: 'calls are only accepted from the workstation renderer', user: false } };
      }
      const reply = await dispatch(service, method, request, options.log);
      return compactArrays(reply);
    },
  };
}
