// Runs sandboxed in the renderer before the page: exposes api.ts and nothing else.
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { createPreloadApi } from './preload-api.ts';

contextBridge.exposeInMainWorld('sam2unet', createPreloadApi(ipcRenderer, { pathForFile: (file) => webUtils.getPathForFile(file) }));
