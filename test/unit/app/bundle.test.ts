/**
 * The compiled app (scripts/build-app.mjs): the sandboxed preload may only require 'electron'
 * and must expose exactly api.ts on window.sam2unet; the main bundle holds the whole core and
 * requires only Node built-ins, electron and onnxruntime-node; every worker entry is compiled.
 * Then the bundles run in plain Node from a package layout like the one electron-builder ships
 * (dist/app, models, the production dependencies; no main/ sources, no tsx): main.cjs with a
 * stand-in 'electron' opens a study and writes the sample study through compiled workers, and
 * bin/sam2unet.mjs falls back to the compiled CLI, whose segmentation matches the sources' byte
 * for byte.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_METHODS } from '../../../main/core/api.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { BUNDLE_FLAG, WORKER_ENTRIES, buildApp } from '../../../scripts/build-app.mjs';

const root = resolve(import.meta.dirname, '../../..');
const shared = resolve(root, '../shared/data');
const requires = (code: string) => [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!);
const packagesRequired = (code: string) => new Set(requires(code).filter((name) => !builtinModules.includes(name.replace(/^node:/, ''))));
const run = promisify(execFile);

function sumOf(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum;
}

let sizes: Record<string, number>;
beforeAll(async () => {
  sizes = await buildApp({ quiet: true });
});

describe('Electron bundles (scripts/build-app.mjs)', () => {
  it('preload needs nothing but electron, and exposes exactly the api on window.sam2unet', async () => {
    const code = readFileSync(resolve(root, 'dist/app/preload.cjs'), 'utf8');
    expect(new Set(requires(code))).toEqual(new Set(['electron']));
    const exposed: Record<string, Record<string, unknown>> = {};
    const invocations: unknown[][] = [];
    // the main process's side of the handshake: a port whose other end answers every call
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m: { kind: string; id: number; method: string }) => port1.postMessage({ kind: 'reply', id: m.id, ok: true, value: [{ id: `/${m.method}.pth`, name: 'm', kind: 'file', regions: ['WT'], description: '', run: { size: [352, 352], channels: ['flair'], regions: 'binary', tta: 'none', from: { size: 'default', channels: 'default', regions: 'default', tta: 'default' } } }] }));
    let deliverPort: ((event: { ports: unknown[] }) => void) | undefined;
    const electron = {
      contextBridge: { exposeInMainWorld: (key: string, value: Record<string, unknown>) => (exposed[key] = value) },
      ipcRenderer: {
        invoke: async (...args: unknown[]) => {
          invocations.push(args);
          if (args[0] === 'sam2unet:connect') deliverPort?.({ ports: [port2] });
        },
        once: (channel: string, listener: (event: { ports: unknown[] }) => void) => {
          if (channel === 'sam2unet:port') deliverPort = listener;
        },
      },
      webUtils: { getPathForFile: () => '' },
    };
    runInNewContext(code, {
      require: (name: string) => {
        if (name !== 'electron') throw new Error(`sandboxed preload cannot require ${name}`);
        return electron;
      },
      module: { exports: {} },
      exports: {},
      console,
      TextEncoder,
      TextDecoder,
    });
    expect(Object.keys(exposed)).toEqual(['sam2unet']);
    expect(Object.keys(exposed.sam2unet!).sort()).toEqual([...API_METHODS, 'onEvent', 'openDropped'].sort());
    const models = (await (exposed.sam2unet!.listModels as (r: object) => Promise<{ id: string }[]>)({})) ;
    expect(models.map((m) => m.id)).toEqual(['/listModels.pth']);
    // the handshake is the only invoke; the call went down the port
    expect(invocations).toEqual([['sam2unet:connect']]);
    port1.close();
  });

  it('main holds the Electron shell and the whole core; it requires no TypeScript loader', () => {
    const code = readFileSync(resolve(root, 'dist/app/main.cjs'), 'utf8');
    expect(packagesRequired(code)).toEqual(new Set(['electron', 'onnxruntime-node']));
    for (const module of ['main/app/ipc.ts', 'main/core/api-service.ts', 'main/core/io/nifti.ts', 'main/core/jobs/job-host.ts']) expect(code).toContain(`// ${module}`);
    expect(code).not.toContain('import.meta');
    expect(code).toContain('contextIsolation: true');
    expect(code).toContain('sandbox: true');
    expect(code).toContain('nodeIntegration: false');
  });

  it('compiles every worker entry that main/ starts, and the CLI, without a TypeScript loader', () => {
    // what main/ hands to startTsWorker: the `new URL('./x.ts', import.meta.url)` entries of the files calling it
    const started = new Set<string>();
    const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    for (const file of walk(resolve(root, 'main'))) {
      const text = readFileSync(file, 'utf8');
      if (!/\bstartTsWorker\(/.test(text) || file.endsWith('util/worker.ts')) continue;
      for (const m of text.matchAll(/new URL\('([^']+\.ts)', import\.meta\.url\)/g)) started.add(relative(root, resolve(dirname(file), m[1]!)));
    }
    expect(started.size).toBeGreaterThanOrEqual(3);
    expect(new Set(WORKER_ENTRIES)).toEqual(started);
    for (const entry of WORKER_ENTRIES) {
      const name = `${entry.split('/').pop()!.replace(/\.ts$/, '')}.cjs`;
      expect(sizes[name], name).toBeGreaterThan(0);
      const code = readFileSync(resolve(root, 'dist/app', name), 'utf8');
      expect([...packagesRequired(code)].every((p) => p === 'onnxruntime-node'), `${name} requires ${[...packagesRequired(code)]}`).toBe(true);
    }
    // vite: `serve --build` only (a development tool); bufferutil, utf-8-validate: ws's optional accelerators;
    // pg, @valkey/valkey-glide: BullMQ's optional back ends, each required inside a try (the queue uses ioredis)
    expect(packagesRequired(readFileSync(resolve(root, 'dist/app/cli.cjs'), 'utf8'))).toEqual(
      new Set(['onnxruntime-node', 'vite', 'bufferutil', 'utf-8-validate', 'pg', '@valkey/valkey-glide']),
    );
    // the flag that makes startTsWorker pick compiled workers is replaced everywhere
    for (const file of Object.keys(sizes)) expect(readFileSync(resolve(root, 'dist/app', file), 'utf8'), file).not.toContain(BUNDLE_FLAG);
  });
  it('electron-builder.yml packs the bundles into the asar, not the sources or a TypeScript loader', () => {
    const config = readFileSync(resolve(root, 'electron-builder.yml'), 'utf8').replace(/#.*$/gm, '');
    expect(config).toContain('- dist/app/**');
    expect(config).not.toMatch(/main\/\*\*|tsx|esbuild/);
    expect(config).toMatch(/asar: true/);
    expect(config).toMatch(/asarUnpack:(\n\s+- .+)*\n\s+- node_modules\/onnxruntime-node\/\*\*/);
    expect(config).toMatch(/enableEmbeddedAsarIntegrityValidation: true/);
    expect(config).toMatch(/main: dist\/app\/main\.cjs/);
  });
});

describe('the compiled app in plain Node, without tsx or the sources', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'bundle-'));
  /** a package as electron-builder lays it out: package.json, dist/app, models, production node_modules */
  const app = join(tmp, 'app');
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  beforeAll(() => {
    mkdirSync(join(app, 'node_modules/electron'), { recursive: true });
    cpSync(join(root, 'package.json'), join(app, 'package.json'));
    cpSync(join(root, 'dist/app'), join(app, 'dist/app'), { recursive: true });
    cpSync(join(root, 'bin'), join(app, 'bin'), { recursive: true });
    symlinkSync(join(root, 'models'), join(app, 'models'));
    cpSync(join(root, 'test/fixtures/electron-stand-in.cjs'), join(app, 'node_modules/electron/index.js'));
    // the production dependencies (what electron-builder packs), linked from the development install
    let listing: string;
    try {
      listing = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch (err) {
      listing = (err as { stdout: string }).stdout; // npm ls exits non-zero on warnings; the list is still complete
    }
    const modules = join(root, 'node_modules') + '/';
    for (const path of listing.split('\n')) {
      if (!path.startsWith(modules)) continue;
      const name = path.slice(modules.length);
      if (name.includes('/node_modules/')) continue; // nested: reached through its parent
      mkdirSync(dirname(join(app, 'node_modules', name)), { recursive: true });
      symlinkSync(path, join(app, 'node_modules', name));
    }
  });

  it('resolves no TypeScript compiler or loader from the bundles, and ships no sources', () => {
    const resolveFrom = createRequire(join(app, 'dist/app/main.cjs'));
    for (const name of ['tsx', 'typescript', 'esbuild']) expect(() => resolveFrom.resolve(name), name).toThrow(/Cannot find module/);
    expect(resolveFrom.resolve('onnxruntime-node')).toContain('onnxruntime-node');
    expect(existsSync(join(app, 'main'))).toBe(false);
  });

  it('main.cjs (stand-in electron): opens a study in the compiled io worker, sends its voxels, writes the sample in the compiled sample worker', async () => {
    const study = join(shared, 'phantoms/BraTS20_Training_002');
    const calls = [
      ['openStudy', { path: study }],
      ['getVolume', { studyId: { $from: 0, path: ['studies', 0, 'id'] }, sequence: 'flair' }],
      ['openSampleStudy', {}],
    ];
    const { stdout } = await run(process.execPath, [join(app, 'dist/app/main.cjs'), `--open=${study}`], {
      cwd: tmp,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, STAND_IN_USER_DATA: join(tmp, 'user-data'), STAND_IN_CALLS: JSON.stringify(calls) },
      maxBuffer: 1 << 24,
    });
    type Reply = { ok: boolean; value: Record<string, unknown> & { studies: Record<string, unknown>[]; data: { length: number; sum: number } } };
    const [opened, volume, sample] = JSON.parse(stdout.trim().split('\n').pop()!) as Reply[];
    const flair = (await readNifti(join(study, 'BraTS20_Training_002_flair.nii.gz'))).volumes[0]!;
    expect(opened!.ok, JSON.stringify(opened)).toBe(true);
    expect(opened!.value.studies[0]).toMatchObject({ name: 'BraTS20_Training_002', kind: 'brats', dims: flair.dims, hasGroundTruth: true });
    expect(volume!.ok).toBe(true);
    expect(volume!.value.dims).toEqual(flair.dims);
    expect(volume!.value.data).toEqual({ length: flair.data.length, sum: sumOf(flair.data) });
    expect(sample!.ok, JSON.stringify(sample)).toBe(true);
    expect(sample!.value.studies[0]).toMatchObject({ name: 'Sample_Phantom', hasGroundTruth: true });
    expect(existsSync(join(tmp, 'user-data/userData/samples/Sample_Phantom/Sample_Phantom_seg.nii.gz'))).toBe(true);
  });

  it('bin/sam2unet.mjs runs the compiled CLI; it segments in the compiled inference worker exactly as the sources do', async () => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME };
    const compiled = (args: string[]) => run(process.execPath, [join(app, 'bin/sam2unet.mjs'), ...args], { cwd: tmp, env, maxBuffer: 1 << 24 });
    await compiled(['phantom', '--out', join(tmp, 'phantoms'), '--size', '48,48,16', '--seed', '3']);
    const caseDir = join(tmp, 'phantoms/Phantom_001');
    const fromBundle = await compiled(['segment', caseDir, '--out', join(tmp, 'bundle'), '--json']);
    const fromSource = await run(process.execPath, [join(root, 'bin/sam2unet.mjs'), 'segment', caseDir, '--out', join(tmp, 'source'), '--json'], { cwd: root, env, maxBuffer: 1 << 24 });
    const summary = JSON.parse(fromBundle.stdout.trim().split('\n').pop()!) as { slices: number; provider: string };
    expect(summary).toMatchObject({ slices: 16, provider: 'cpu' });
    expect(fromBundle.stderr).toContain(`bundled default model (${join(app, 'models/default/model.safetensors')})`);
    for (const file of ['Phantom_001_pred.nii.gz', 'metrics.csv']) {
      expect(readFileSync(join(tmp, 'bundle', file)).equals(readFileSync(join(tmp, 'source', file))), file).toBe(true);
    }
    expect(fromSource.stdout.trim().split('\n').length).toBe(fromBundle.stdout.trim().split('\n').length);
  });
});
