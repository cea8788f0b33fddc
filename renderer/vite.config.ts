import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const root = fileURLToPath(new URL('.', import.meta.url));

// Relative base: the same build is served by the web bridge (http://127.0.0.1:port/) and by the
// Electron app's app:// protocol.
export default defineConfig({
  root,
  base: './',
  plugins: [svelte()],
  resolve: {
    alias: {
      '@kitware/vtk.js/IO/XML/XMLPolyDataReader.js': fileURLToPath(new URL('./src/shims/vtk-xml-polydata-reader.ts', import.meta.url)),
    },
  },
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    reportCompressedSize: false,
  },
  worker: { format: 'es' },
  logLevel: 'warn',
});
