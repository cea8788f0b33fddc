import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { API_METHODS } from '../../../main/core/api.ts';
import type { ApiEvent } from '../../../main/core/api.ts';
import { createAppWiring, isTrustedSender } from '../../../main/app/ipc.ts';
import { CONNECT_CHANNEL, GRANT_DROP, PORT_CHANNEL, createPreloadApi } from '../../../main/app/preload-api.ts';
import type { RendererIpc } from '../../../main/app/preload-api.ts';
import { FileError } from '../../../main/core/errors.ts';
import { apiClient } from '../../../main/core/rpc/api-channel.ts';
import { ChannelServer, type Reply } from '../../../main/core/rpc/channel.ts';
import { ApiCallError } from '../../../main/core/rpc/errors.ts';
import { nodePortTransport, type DomPortLike, type ElectronPortLike } from '../../../main/core/rpc/ports.ts';
import { DIMS, fakePorts } from './fakes.ts';
import type { FakeCalls } from './fakes.ts';

const APP = 'app://renderer/index.html';
const dir = mkdtempSync(join(tmpdir(), 'sam2unet-ipc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function wiring(dialogAnswers: (string | null)[] = [], calls: FakeCalls = { written: [] }, options = {}, app: { initialPaths?: string[]; settingsFile?: string } = { initialPaths: ['/data'] }) {
  const log = vi.fn<(line: string) => void>();
  const showSaveDialog = vi.fn(async () => dialogAnswers.shift() ?? null);
  const showOpenDialog = vi.fn(async () => '/data/tiny');
  const showModelDialog = vi.fn(async () => '/models/picked.pth');
  const openPath = vi.fn(async (_file: string) => {});
  const w = createAppWiring({ ports: fakePorts(calls, options), log, showSaveDialog, showOpenDialog, showModelDialog, openPath, ...app });
  const call = async (method: string, request: unknown, sender = APP) => w.handleCall(sender, method, request);
  const value = async <T>(method: string, request: unknown) => {
    const reply = await call(method, request);
    if (!reply.ok) throw new Error(`${method}: ${reply.error.message}`);
    return reply.value as T;
  };
  return { ...w, log, showSaveDialog, showOpenDialog, showModelDialog, openPath, call, value, calls };
}

describe('Electron IPC wiring (handlers called directly)', () => {
  it('trusts only the app:// renderer', () => {
    expect(isTrustedSender('app://renderer/index.html')).toBe(true);
    expect(isTrustedSender('https://evil.example/')).toBe(false);
    expect(isTrustedSender('file:///etc/passwd')).toBe(false);
    expect(isTrustedSender('app://other/index.html')).toBe(false);
    expect(isTrustedSender('not a url')).toBe(false);
  });

  it('refuses calls from other pages before validating or running anything', async () => {
    const w = wiring();
    const reply = await w.call('openStudy', { path: '/x' }, 'https://evil.example/');
    expect(reply).toMatchObject({ ok: false, error: { name: 'Forbidden' } });
    expect(w.log).toHaveBeenCalledWith(expect.stringContaining('refused a call from https://evil.example/'));
  });

  it('refuses and logs every invalid message', async () => {
    const w = wiring();
    for (const [method, request] of [
      ['deleteEverything', {}],
      ['openStudy', { path: 1 }],
      ['exportMasks', { studyId: 's', format: 'nifti', source: 'prediction', path: 5 }],
      ['getVolume', 'flair'],
    ] as const) {
      const reply = await w.call(method, request);
      expect(reply.ok, method).toBe(false);
      expect((reply as Extract<Reply, { ok: false }>).error.name).toBe('InvalidRequest');
    }
    expect(w.log).toHaveBeenCalledTimes(4);
    expect(w.log.mock.calls.every(([line]) => line.startsWith('refused invalid call'))).toBe(true);
  });

  it('opens a study, serves its volume and ground truth, and reports user errors as such', async () => {
    const w = wiring();
    const opened = await w.value<{ studies: { id: string; dims: number[]; sequences: { name: string; window: { width: number } }[]; hasGroundTruth: boolean }[]; notes: string[] }>('openStudy', { path: '/data/tiny' });
    expect(opened.notes).toEqual(['a note']);
    const [study] = opened.studies;
    expect(study).toMatchObject({ dims: DIMS, hasGroundTruth: true });
    expect(study!.sequences[0]!.name).toBe('flair');
    expect(study!.sequences[0]!.window.width).toBeGreaterThan(0);
    const volume = await w.value<{ data: Int16Array; dims: number[] }>('getVolume', { studyId: study!.id, sequence: 'flair' });
    expect(volume.data).toBeInstanceOf(Int16Array);
    expect(volume.data[23]).toBe(230);
    const labels = await w.value<{ data: Uint8Array }>('getLabels', { studyId: study!.id, source: 'groundTruth' });
    expect(labels.data[6]).toBe(4);
    expect(await w.value('getLabels', { studyId: study!.id, source: 'prediction' })).toBeNull();
    const missing = await w.call('getVolume', { studyId: study!.id, sequence: 't2' });
    expect(missing).toMatchObject({ ok: false, error: { user: true, message: expect.stringContaining('has no sequence "t2"') } });
    const unknown = await w.call('getVolume', { studyId: 'nope', sequence: 'flair' });
    expect(unknown).toMatchObject({ ok: false, error: { user: true } });
  });

  it('sends a volume that is a view into a bigger buffer as its own bytes only', async () => {
    const w = wiring();
    const { studies } = await w.value<{ studies: { id: string }[] }>('openStudy', { path: '/data/view' });
    const volume = await w.value<{ data: Int16Array }>('getVolume', { studyId: studies[0]!.id, sequence: 'flair' });
    // 24 int16 voxels: 48 bytes, not the 96 of the buffer behind the view
    expect(volume.data.buffer.byteLength).toBe(48);
    expect(volume.data[23]).toBe(230);
  });

  it('sends a volume in shared memory as a plain copy (shared memory cannot cross to the renderer process)', async () => {
    const w = wiring();
    const { studies } = await w.value<{ studies: { id: string }[] }>('openStudy', { path: '/data/shared' });
    const volume = await w.value<{ data: Int16Array }>('getVolume', { studyId: studies[0]!.id, sequence: 'flair' });
    expect(volume.data.buffer).toBeInstanceOf(ArrayBuffer);
    expect(volume.data.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    expect(Array.from(volume.data)).toEqual(Array.from({ length: 24 }, (_, i) => i * 10));
  });

  it('streams a segmentation as events, then exports only to the path the dialog returned', async () => {
    const w = wiring([join(dir, 'chosen.nii.gz'), join(dir, 'second.nii.gz')]);
    const events: ApiEvent[] = [];
    w.service.onEvent((e) => events.push(e));
    const { studies } = await w.value<{ studies: { id: string }[] }>('openStudy', { path: '/data/tiny' });
    const studyId = studies[0]!.id;
    // exporting before any prediction exists is a user error, not a crash
    expect(await w.call('exportMasks', { studyId, format: 'nifti', source: 'prediction', path: join(dir, 'x.nii.gz') })).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/run a segmentation first/) } });

    const started = await w.value<{ jobId: string; slices: number }>('segment', { studyId });
    expect(started.slices).toBe(2);
    await vi.waitFor(() => expect(events.some((e) => e.type === 'done')).toBe(true));
    const slices = events.filter((e) => e.type === 'sliceResult');
    expect(slices.map((e) => e.index)).toEqual([0, 1]);
    expect(slices[0]!.mask).toBeInstanceOf(Uint8Array);
    const prediction = await w.value<{ data: Uint8Array }>('getLabels', { studyId, source: 'prediction' });
    expect(prediction.data[17]).toBe(1);

    // a path the dialog never returned is refused
    const forged = await w.call('exportMasks', { studyId, format: 'nifti', source: 'prediction', path: '/etc/cron.d/evil.nii.gz' });
    expect(forged).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/not chosen in the save dialog/) } });
    expect(await w.call('exportMasks', { studyId, format: 'nifti', source: 'prediction' })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/choose where to save/) } });

    const chosen = await w.value<{ path: string }>('chooseExportPath', { studyId, format: 'nifti' });
    expect(w.showSaveDialog).toHaveBeenCalledWith('tiny_pred.nii.gz', 'nifti');
    const result = await w.value<{ files: string[] }>('exportMasks', { studyId, format: 'nifti', source: 'prediction', path: chosen.path });
    expect(result.files).toEqual([join(dir, 'chosen.nii.gz')]);
    expect(existsSync(join(dir, 'chosen.nii.gz'))).toBe(true);
    // what the app exported opens with the system's application; nothing else does
    expect(await w.value('openExport', { file: join(dir, 'chosen.nii.gz') })).toEqual({ opened: true });
    expect(w.openPath).toHaveBeenCalledWith(join(dir, 'chosen.nii.gz'));
    expect(await w.call('openExport', { file: '/etc/passwd' })).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/not a file this app exported/) } });
    expect(w.openPath).toHaveBeenCalledTimes(1);
    expect([...w.calls.written[0]!.labels]).toEqual([...w.calls.written[0]!.labels].map((_, i) => (i === 5 ? 2 : i === 6 ? 4 : i === 17 ? 1 : 0)));
    // each choice is good for one export
    expect(await w.call('exportMasks', { studyId, format: 'nifti', source: 'prediction', path: chosen.path })).toMatchObject({ ok: false });
    expect(await w.value('chooseStudyPath', {})).toEqual({ path: '/data/tiny' });
    // a cancelled dialog gives null and allows nothing
    w.showSaveDialog.mockResolvedValueOnce(null);
    expect(await w.value('chooseExportPath', { studyId, format: 'nifti' })).toBeNull();
  });

  it('reads only under roots the user chose: dialogs, drops, the command line, recent studies', async () => {
    const settingsFile = join(dir, 'roots-settings.json');
    const w = wiring([], { written: [] }, {}, { settingsFile });
    const openPath = vi.spyOn(w.service as unknown as { openStudy: (r: unknown) => unknown }, 'openStudy');
    for (const path of ['/etc/passwd', '/home/user/.ssh', '/data/../etc/shadow']) {
      const reply = await w.call('openStudy', { path });
      expect(reply, path).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/refusing to read .*Open dialog/) } });
    }
    expect(await w.call('segment', { studyId: 'x', checkpoint: '/etc/passwd' })).toMatchObject({ ok: false });
    expect(await w.call('addModel', { path: '/etc/passwd.pth' })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/refusing to read/) } });
    expect(await w.call('train', { data: ['/etc'], strategy: 'adapter' })).toMatchObject({ ok: false });
    openPath.mockClear();

    // the open dialog's answer becomes readable
    expect(await w.value('chooseStudyPath', {})).toEqual({ path: '/data/tiny' });
    expect((await w.call('openStudy', { path: '/data/tiny' })).ok).toBe(true);
    // a drop from the app's page grants the dropped path; other pages and bad payloads are refused
    expect(await w.handleDrop('https://evil.example/', '/etc')).toMatchObject({ ok: false, error: { name: 'Forbidden' } });
    expect(await w.handleDrop(APP, 42)).toMatchObject({ ok: false, error: { name: 'InvalidRequest' } });
    // a drop is of something that exists (guards.ts refuses roots, home and system folders)
    const dropped = join(dir, 'dropped-case');
    mkdirSync(dropped, { recursive: true });
    expect(w.roots.allows(join(dropped, 't1.nii.gz'))).toBe(false);
    expect(await w.handleDrop(APP, dropped)).toEqual({ ok: true, value: { path: dropped } });
    expect(w.roots.allows(join(dropped, 't1.nii.gz'))).toBe(true);
    expect(w.roots.allows(`${dropped}2`)).toBe(false);

    // recent studies are remembered (atomically, on disk) and readable in the next session
    await vi.waitFor(() => expect(existsSync(settingsFile)).toBe(true));
    const next = wiring([], { written: [] }, {}, { settingsFile });
    await next.ready;
    expect(next.roots.allows('/data/tiny')).toBe(true);
    expect(next.roots.allows(dropped)).toBe(false);
    expect(await next.value('recentStudies', {})).toEqual([expect.objectContaining({ path: '/data/tiny', name: 'tiny' })]);
  });

  it('adds a checkpoint chosen in the dialog, remembers it, and refuses files that are not checkpoints', async () => {
    const settingsFile = join(dir, 'models-settings.json');
    const w = wiring([], { written: [] }, {}, { settingsFile, initialPaths: ['/data'] });
    expect(await w.value('chooseModelPath', {})).toEqual({ path: '/models/picked.pth' });
    const added = await w.value<{ id: string; kind: string; regions: string[] }>('addModel', { path: '/models/picked.pth' });
    expect(added).toMatchObject({ id: '/models/picked.pth', kind: 'file', regions: ['WT', 'TC', 'ET'] });
    const notCheckpoint = await w.call('addModel', { path: '/data/tiny' });
    expect(notCheckpoint).toMatchObject({ ok: false, error: { message: expect.stringMatching(/not a checkpoint/) } });
    const next = wiring([], { written: [] }, {}, { settingsFile });
    await next.ready;
    expect(next.roots.allows('/models/picked.pth')).toBe(true);
  });

  it('keeps settings across sessions, validates them, and sets an unreadable file aside', async () => {
    const settingsFile = join(dir, 'settings-settings.json');
    const w = wiring([], { written: [] }, {}, { settingsFile });
    const defaults = await w.value<{ device: string; overlayOpacity: number }>('getSettings', {});
    expect(defaults).toMatchObject({ device: 'auto', overlayMode: 'fill' });
    await w.value('updateSettings', { overlayOpacity: 0.8, labelColors: { necrotic: '#aa0000', edema: '#00aa00', enhancing: '#aaaa00' } });
    expect(await w.call('updateSettings', { device: 'tpu' })).toMatchObject({ ok: false, error: { user: true, message: expect.stringMatching(/unknown device "tpu"/) } });
    expect(await w.call('updateSettings', { overlayOpacity: -1 })).toMatchObject({ ok: false, error: { name: 'InvalidRequest' } });
    const next = wiring([], { written: [] }, {}, { settingsFile });
    expect(await next.value('getSettings', {})).toMatchObject({ overlayOpacity: 0.8, labelColors: { necrotic: '#aa0000' } });
    const { readdirSync, writeFileSync } = await import('node:fs');
    expect(readdirSync(dir).filter((f) => f.includes('settings-settings.json.tmp'))).toEqual([]);
    writeFileSync(settingsFile, '{"version": 1, "settings": {"overlayOpacity": "lots"}}');
    const broken = wiring([], { written: [] }, {}, { settingsFile });
    expect(await broken.value('getSettings', {})).toMatchObject({ overlayOpacity: 0.5 });
    expect(broken.log).toHaveBeenCalledWith(expect.stringMatching(/overlayOpacity must be a finite number; kept as settings-settings.json.unreadable-/));
    expect(readdirSync(dir).some((f) => f.startsWith('settings-settings.json.unreadable-'))).toBe(true);
  });

  it('serves the page on one port: calls, replies and every slice in order; other pages get no channel', async () => {
    const w = wiring([], { written: [] }, { sliceDelayMs: 5 });
    const channel = new MessageChannel();
    expect(w.connect('https://evil.example/', electronPort(channel.port1))).toBeNull();
    expect(w.log).toHaveBeenCalledWith(expect.stringContaining('refused a connection from https://evil.example/'));
    const disconnect = w.connect(APP, electronPort(channel.port1))!;
    const { api } = apiClient(nodePortTransport(channel.port2));
    const received: ApiEvent[] = [];
    api.onEvent((e) => received.push(e));
    const { studies } = await api.openStudy({ path: '/data/tiny' });
    const { jobId } = await api.segment({ studyId: studies[0]!.id });
    // the reply naming the job came before any of its events: nothing of it was received yet
    expect(received.filter((e) => e.type !== 'menu' && e.jobId === jobId)).toEqual([]);
    await vi.waitFor(() => expect(received.some((e) => e.type === 'done')).toBe(true));
    const slices = received.filter((e) => e.type === 'sliceResult');
    expect(slices.map((e) => e.index)).toEqual([0, 1]);
    expect(slices[1]!.mask).toEqual(new Uint8Array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    // a refused call comes back as an error of its own, on the same port
    await expect(api.openStudy({ path: 1 } as never)).rejects.toThrow(/invalid request/);
    disconnect();
    channel.port1.close();
  });

  it('cancels a running job and says so in an event', async () => {
    const w = wiring([], { written: [] }, { sliceDelayMs: 200 });
    const events: ApiEvent[] = [];
    w.service.onEvent((e) => events.push(e));
    const { studies } = await w.value<{ studies: { id: string }[] }>('openStudy', { path: '/data/tiny' });
    const { jobId } = await w.value<{ jobId: string }>('segment', { studyId: studies[0]!.id });
    expect(await w.call('segment', { studyId: studies[0]!.id })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/already running/) } });
    expect(await w.value('cancel', { jobId })).toEqual({ cancelled: true });
    await vi.waitFor(() => expect(events.at(-1)).toEqual({ type: 'cancelled', jobId }));
    expect(events.some((e) => e.type === 'done')).toBe(false);
    expect(await w.value('cancel', { jobId })).toEqual({ cancelled: false });
  });

  it('says clearly when segmentation or an export format is not available', async () => {
    const w = wiring([], { written: [] }, { segmentation: false });
    const caps = await w.value<{ segmentation: { available: boolean; reason: string }; exports: Record<string, { available: boolean }>; dialogs: boolean; mode: string }>('capabilities', {});
    expect(caps).toMatchObject({ mode: 'electron', dialogs: true, segmentation: { available: false, reason: 'no engine in this test' } });
    expect(caps.exports).toMatchObject({ nifti: { available: true }, report: { available: false } });
    const { studies } = await w.value<{ studies: { id: string }[] }>('openStudy', { path: '/data/tiny' });
    expect(await w.call('segment', { studyId: studies[0]!.id })).toMatchObject({ ok: false, error: { user: true, message: 'segmentation is not available: no engine in this test' } });
  });
});

/** Node's MessagePort as Electron's MessagePortMain presents itself (messages as { data }). */
function electronPort(port: MessagePort): ElectronPortLike {
  const wrapped = new Map<(event: { data: unknown }) => void, (data: unknown) => void>();
  return {
    postMessage: (message) => port.postMessage(message),
    on(event: 'message' | 'close', listener: ((event: { data: unknown }) => void) | (() => void)) {
      if (event === 'close') port.on('close', listener as () => void);
      else {
        const inner = (data: unknown) => (listener as (event: { data: unknown }) => void)({ data });
        wrapped.set(listener as (event: { data: unknown }) => void, inner);
        port.on('message', inner);
      }
      return this;
    },
    off(_event: 'message', listener: (event: { data: unknown }) => void) {
      const inner = wrapped.get(listener);
      if (inner) port.off('message', inner);
      return this;
    },
    start: () => port.start(),
  } as ElectronPortLike;
}

describe('preload API', () => {
  /** ipcRenderer as the main process answers it: the handshake hands over a port served by `handlers`. */
  function fakeIpc(handlers: Record<string, (request: unknown) => Promise<unknown>>) {
    const { port1, port2 } = new MessageChannel();
    const calls: [string, unknown][] = [];
    const server = new ChannelServer(nodePortTransport(port1), {
      handlers: Object.fromEntries(Object.entries(handlers).map(([m, h]) => [m, (request: unknown) => (calls.push([m, request]), h(request))])),
    });
    let deliver: ((event: { ports?: readonly DomPortLike[] }) => void) | undefined;
    const ipc: RendererIpc & { invoke: ReturnType<typeof vi.fn> } = {
      invoke: vi.fn(async (channel: string) => {
        if (channel === CONNECT_CHANNEL) deliver?.({ ports: [port2 as unknown as DomPortLike] });
      }),
      once: (channel, listener) => {
        if (channel === PORT_CHANNEL) deliver = listener;
      },
    };
    afterAll(() => {
      port1.close();
    });
    return { ipc, server, calls };
  }

  it('exposes exactly the api.ts methods plus onEvent', () => {
    const api = createPreloadApi(fakeIpc({}).ipc);
    expect(Object.keys(api).sort()).toEqual([...API_METHODS, 'onEvent'].sort());
    expect(Object.values(api).every((f) => typeof f === 'function')).toBe(true);
    const electron = createPreloadApi(fakeIpc({}).ipc, { pathForFile: () => '' });
    expect(Object.keys(electron).sort()).toEqual([...API_METHODS, 'onEvent', 'openDropped'].sort());
  });

  it('sends each call on the one channel and unwraps replies; the handshake is the only invoke', async () => {
    const { ipc, calls } = fakeIpc({ listModels: async () => [{ id: '/m.pth', name: 'm', kind: 'file', regions: ['WT'], description: 'd', run: { size: [352, 352], channels: ['flair'], regions: 'binary', tta: 'none', from: { size: 'default', channels: 'default', regions: 'default', tta: 'default' } } }] });
    const api = createPreloadApi(ipc);
    expect((await api.listModels({})).map((m) => m.id)).toEqual(['/m.pth']);
    expect(calls).toEqual([['listModels', {}]]);
    expect(ipc.invoke).toHaveBeenCalledTimes(1);
    expect(ipc.invoke).toHaveBeenCalledWith(CONNECT_CHANNEL);
  });

  it('turns error replies into ApiCallErrors that keep user messages as they are, and refuses replies that break the contract', async () => {
    const api = createPreloadApi(
      fakeIpc({
        openStudy: async () => {
          throw new FileError('/x', 'no such file');
        },
        listModels: async () => [{ id: 42 }],
      }).ipc,
    );
    const err = await api.openStudy({ path: '/x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiCallError);
    expect((err as Error).message).toBe('/x: no such file');
    await expect(api.listModels({})).rejects.toThrow(/invalid reply/);
  });

  it('passes valid events on and drops invalid ones', async () => {
    const { ipc, server } = fakeIpc({ capabilities: async () => ({ mode: 'electron', segmentation: { available: true }, exports: { nifti: { available: true }, 'dicom-seg': { available: true }, report: { available: true } }, dialogs: true, devices: ['auto'] }) });
    const api = createPreloadApi(ipc);
    await api.capabilities({});
    const seen: ApiEvent[] = [];
    const stop = api.onEvent((e) => seen.push(e));
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    server.emit({ type: 'cancelled', jobId: 'j' });
    server.emit({ type: 'cancelled' });
    await vi.waitFor(() => expect(error).toHaveBeenCalledTimes(1));
    expect(seen).toEqual([{ type: 'cancelled', jobId: 'j' }]);
    error.mockRestore();
    stop();
    server.emit({ type: 'cancelled', jobId: 'k' });
    await new Promise((done) => setTimeout(done, 20));
    expect(seen).toHaveLength(1);
  });

  it('opens a dropped file by its real path only, after the main process granted it', async () => {
    const { ipc, calls } = fakeIpc({ [GRANT_DROP]: async (path) => ({ path }), openStudy: async () => ({ studies: [], notes: [] }) });
    const api = createPreloadApi(ipc, { pathForFile: (file) => (file.name === 'real' ? '/dropped' : '') });
    await expect(api.openDropped!(new File([], 'made-up'))).rejects.toThrow(/no path on disk/);
    await api.openDropped!(new File([], 'real'));
    expect(calls).toEqual([
      [GRANT_DROP, '/dropped'],
      ['openStudy', { path: '/dropped' }],
    ]);
  });
});

describe('display window and export names', async () => {
  const { suggestedExportName } = await import('../../../main/core/export/index.ts');
  const { robustWindow } = await import('../../../main/core/io/display-window.ts');
  const { Volume } = await import('../../../main/core/io/volume.ts');

  it('windows the non-zero voxels between their 0.5 and 99.5 percentiles', () => {
    // background zeros (ignored), 1000 voxels 1…1000, and one bright outlier
    const data = new Int16Array(3000);
    for (let i = 0; i < 1000; i++) data[i] = i + 1;
    data[2999] = 30000;
    const volume = new Volume({ geometry: { dims: [3000, 1, 1], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, data, meta: { id: 'v', description: '', modality: 'MR', sources: [] } });
    const { center, width } = robustWindow(volume);
    const lo = center - width / 2;
    const hi = center + width / 2;
    // histogram bins are (30000 / 4095) ≈ 7.3 wide: that is the tolerance
    expect(Math.abs(lo - 5)).toBeLessThan(8);
    expect(Math.abs(hi - 996)).toBeLessThan(8);
  });

  it('gives a flat volume a usable window', () => {
    const volume = new Volume({ geometry: { dims: [2, 1, 1], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, data: new Float32Array([5, 5]), meta: { id: 'v', description: '', modality: 'MR', sources: [] } });
    expect(robustWindow(volume)).toEqual({ center: 5, width: 1 });
  });

  it('suggests safe file names', () => {
    // a prediction is never named like BraTS's ground truth (<case>_seg.nii.gz); ground truth keeps that name
    expect(suggestedExportName('BraTS20 Training/001', 'nifti')).toBe('BraTS20_Training_001_pred.nii.gz');
    expect(suggestedExportName('BraTS20 Training/001', 'nifti', 'groundTruth')).toBe('BraTS20_Training_001_seg.nii.gz');
    expect(suggestedExportName('../..', 'dicom-seg')).toBe('study_pred_seg.dcm');
    expect(suggestedExportName('../..', 'dicom-seg', 'groundTruth')).toBe('study_seg.dcm');
    expect(suggestedExportName('', 'report')).toBe('study_report');
  });
});
