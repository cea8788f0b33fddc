#!/usr/bin/env node
// Compiles the desktop app ahead of time (esbuild, CommonJS, into dist/app/), so that no
// TypeScript compiler or loader runs in the shipped app:
//   main.cjs     the Electron main process with the whole core
//   preload.cjs  the sandboxed preload: one self-contained file that may require only 'electron'
//   cli.cjs      the `sam2unet` command, which bin/sam2unet.mjs runs where tsx is not installed
//   <name>.cjs   one bundle per worker-thread entry point, named after it (WORKER_ENTRIES)
// Pure-JavaScript packages are bundled in. Left as packages: electron; onnxruntime-node (a native
// binding); vite (`serve --build` rebuilds the renderer, a development tool); and the Cornerstone
// codecs and jpeg-lossless-decoder-js, which io/dicom/codecs.ts loads at run time through
// createRequire (Emscripten modules that find their .wasm beside themselves).
// Why CommonJS: Electron's main process loads it synchronously, so everything that must precede
// 'ready' (privileged schemes, the sandbox switch) runs before it; the price is no top-level
// await in the bundled modules (esbuild refuses it, loudly).
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = join(root, 'dist/app');

/**
 * Every worker-thread entry point of the core (what main/ passes to startTsWorker). Callers name
 * the `.ts` entry; in a bundle main/core/util/worker.ts starts `<basename>.cjs` beside itself
 * instead, so these names must be unique. test/unit/app/bundle.test.ts checks that every entry
 * main/ starts is listed here.
 */
export const WORKER_ENTRIES = ['main/core/jobs/job-worker.ts', 'main/core/onnx/session-worker.ts', 'main/core/phantom/sample-worker.ts', 'main/core/cohort/thread.ts'];

/** Set (to true) in every bundle; main/core/util/worker.ts reads it to pick compiled workers. */
export const BUNDLE_FLAG = '__SAM2UNET_BUNDLE__';

const SOURCE_URL = '__sam2unetSourceUrl';

/**
 * Each module's `import.meta.url` becomes the URL its source file has in the source tree,
 * resolved from the bundle's own folder (dist/app/../../main/…). The core computes paths from
 * it (models/default, renderer/dist, its worker entries, createRequire's base), so they resolve
 * in the built app exactly as from source, although main/ itself is not shipped. (esbuild alone
 * would leave import.meta empty in CommonJS, and one URL for the whole bundle would move every
 * relative path.)
 */
const sourceLocations = {
  name: 'source-locations',
  setup(b) {
    const mainDir = join(root, 'main') + sep;
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(mainDir)) return undefined;
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const fromRoot = relative(root, args.path).split(sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `${SOURCE_URL}(${JSON.stringify(fromRoot)})`), loader: 'ts' };
    });
  },
};

export async function buildApp({ quiet = false } = {}) {
  const names = WORKER_ENTRIES.map((entry) => basename(entry, '.ts'));
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate) throw new Error(`two worker entries are named ${duplicate}.ts; startTsWorker finds compiled workers by name`);

  const rootFromOut = relative(outdir, root).split(sep).join('/');
  const node = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'linked',
    absWorkingDir: root,
    outdir,
    outExtension: { '.js': '.cjs' },
    logLevel: quiet ? 'error' : 'warning',
    external: ['electron', 'onnxruntime-node', 'vite'],
    define: { [BUNDLE_FLAG]: 'true' },
    // import() of a package becomes require(): Electron's ESM resolver inside an asar has
    // regressed more than once (electron/electron#38957, #40211, #45896); its CommonJS one is stable
    supported: { 'dynamic-import': false },
    banner: {
      js: `var ${SOURCE_URL} = (p) => require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(rootFromOut)}, p)).href;`,
    },
    plugins: [sourceLocations],
    metafile: true,
  };
  const results = await Promise.all([
    build({ ...node, entryPoints: { main: 'main/app/main.ts', cli: 'main/cli/index.ts', ...Object.fromEntries(WORKER_ENTRIES.map((e, i) => [names[i], e])) } }),
    build({
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      sourcemap: 'linked',
      absWorkingDir: root,
      logLevel: quiet ? 'error' : 'warning',
      external: ['electron'],
      entryPoints: ['main/app/preload.ts'],
      outfile: join(outdir, 'preload.cjs'),
      metafile: true,
    }),
  ]);
  /** bytes of each bundle written, by file name */
  const sizes = {};
  for (const result of results) {
    for (const [file, output] of Object.entries(result.metafile.outputs)) {
      if (file.endsWith('.cjs')) sizes[basename(file)] = output.bytes;
    }
  }
  return sizes;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const sizes = await buildApp();
  for (const [file, bytes] of Object.entries(sizes)) console.error(`built dist/app/${file} (${(bytes / 1024).toFixed(0)} KiB)`);
}
