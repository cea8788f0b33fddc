// Runs sandboxed in the renderer before the page: exposes api.ts and nothing else.
import { contextBridge, ipcRenderer } from 'electron';
import { createPreloadApi } from './preload-api.ts';

contextBridge.exposeInMainWorld('sam2unet', createPreloadApi(ipcRenderer));
