/**
 * The axial viewport: a Cornerstone3D stack viewport fed with the slices of a VolumeData (local
 * images, no image loader round trips), plus a canvas overlay for the label maps, kept aligned
 * with Cornerstone's camera through worldToCanvas on every render.
 */
import {
  Enums,
  EVENTS,
  RenderingEngine,
  cache,
  getShouldUseCPURendering,
  imageLoader,
  init,
  setUseCPURendering,
  utilities,
} from '@cornerstonejs/core';
import type { Types } from '@cornerstonejs/core';
import type { DisplayWindow, VolumeData } from '../../../main/core/api.ts';
import { paintLabels } from './overlay.ts';

export interface OverlayLayer {
  labels: Uint8Array;
  alpha: number;
  outline: boolean;
}

let initialised = false;

/**
 * 'none', 'software' (SwiftShader, llvmpipe: headless machines, VMs) or 'hardware'. Measured
 * in headless Chromium with SwiftShader: Cornerstone's WebGL path renders the right pixels (read
 * back from its canvas: black background, grey brain), but the page shows that canvas with the
 * greys inverted (a compositing fault of the software stack). The CPU path shows correctly
 * there, so software GL uses the CPU path (no speed lost: both run on the CPU).
 */
function webglKind(): 'none' | 'software' | 'hardware' {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (!gl) return 'none';
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return /swiftshader|llvmpipe|softpipe|software/i.test(renderer) ? 'software' : 'hardware';
  } catch {
    return 'none';
  }
}

let nextEngine = 0;
let nextStack = 0;

interface PendingSlice {
  volume: VolumeData;
  z: number;
  options: Omit<Parameters<typeof imageLoader.createAndCacheLocalImage>[1], 'scalarData'>;
}
/** Slices registered by setVolume, turned into images by the loader on first use. */
const pendingSlices = new Map<string, PendingSlice>();

/** Real values of slice z in a type Cornerstone takes, in a buffer of its own. */
function sliceScalars(volume: VolumeData, z: number): Int16Array | Uint16Array | Uint8Array | Float32Array {
  const plane = volume.dims[0] * volume.dims[1];
  const stored = volume.data.subarray(z * plane, (z + 1) * plane);
  const native = stored instanceof Int16Array || stored instanceof Uint16Array || stored instanceof Uint8Array || stored instanceof Float32Array;
  if (native && volume.slope === 1 && volume.intercept === 0) return stored.slice();
  const out = new Float32Array(plane);
  for (let i = 0; i < plane; i++) out[i] = Number(stored[i]) * volume.slope + volume.intercept;
  return out;
}

function registerSliceLoader(): void {
  imageLoader.registerImageLoader('sam2unet', (imageId: string) => {
    const pending = pendingSlices.get(imageId);
    if (!pending) return { promise: Promise.reject(new Error(`${imageId} is no longer shown`)) };
    pendingSlices.delete(imageId);
    const image = imageLoader.createAndCacheLocalImage(imageId, { ...pending.options, scalarData: sliceScalars(pending.volume, pending.z) });
    return { promise: Promise.resolve(image) };
  });
}

export class SliceViewer {
  readonly #element: HTMLDivElement;
  readonly #overlay: HTMLCanvasElement;
  readonly #engine: RenderingEngine;
  readonly #viewportId = 'axial';
  #volume: VolumeData | null = null;
  #imageIds: string[] = [];
  #layers: OverlayLayer[] = [];
  #slice = 0;
  #maskCanvas = document.createElement('canvas');
  #resizeObserver: ResizeObserver;
  /** 'webgl' or 'cpu': which Cornerstone rendering path is in use */
  readonly backend: 'webgl' | 'cpu';

  constructor(element: HTMLDivElement, overlay: HTMLCanvasElement) {
    if (!initialised) {
      init();
      // `?render=cpu` forces the CPU path (a way out for broken GPU drivers), `?render=gpu` WebGL.
      const requested = new URLSearchParams(window.location.search).get('render');
      if (requested === 'cpu' || (requested !== 'gpu' && webglKind() !== 'hardware')) setUseCPURendering(true);
      registerSliceLoader();
      initialised = true;
    }
    this.backend = getShouldUseCPURendering() ? 'cpu' : 'webgl';
    this.#element = element;
    this.#overlay = overlay;
    this.#engine = new RenderingEngine(`sam2unet-${nextEngine++}`);
    this.#engine.enableElement({
      viewportId: this.#viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    element.addEventListener(EVENTS.IMAGE_RENDERED, this.#drawOverlay);
    this.#resizeObserver = new ResizeObserver(() => {
      this.#engine.resize(true, true);
      this.#drawOverlay();
    });
    this.#resizeObserver.observe(element);
  }

  get #viewport(): Types.IStackViewport {
    return this.#engine.getViewport(this.#viewportId) as Types.IStackViewport;
  }

  /**
   * Shows a new volume (or sequence) at slice `k`, replacing the previous stack. Only metadata
   * is registered up front; each slice becomes a Cornerstone image when it is first shown
   * (see the 'sam2unet' image loader below), so opening a volume costs one slice, not all.
   */
  async setVolume(volume: VolumeData, k: number, window: DisplayWindow): Promise<void> {
    this.#releaseImages();
    this.#volume = volume;
    const [nx, ny, nz] = volume.dims;
    const d = volume.direction;
    // Geometry.direction is row-major with column c = index axis c; Cornerstone wants the
    // row (x) cosines then the column (y) cosines.
    const rowCosines = [d[0]!, d[3]!, d[6]!];
    const columnCosines = [d[1]!, d[4]!, d[7]!];
    const normal = [d[2]!, d[5]!, d[8]!];
    const tag = `${volume.studyId}/${volume.sequence}/${nextStack++}`;
    const frameOfReferenceUID = `sam2unet.${volume.studyId}`;
    this.#imageIds = [];
    for (let z = 0; z < nz; z++) {
      const imageId = `sam2unet:${tag}/${z}`;
      const origin = volume.origin.map((o, r) => o + normal[r]! * volume.spacing[2] * z) as Types.Point3;
      pendingSlices.set(imageId, {
        volume,
        z,
        options: {
          dimensions: [nx, ny],
          spacing: [volume.spacing[0], volume.spacing[1]],
          origin,
          direction: [...rowCosines, ...columnCosines, ...normal] as Types.Mat3,
          frameOfReferenceUID,
        },
      });
      const add = (type: string, metadata: unknown) => utilities.genericMetadataProvider.addRaw(imageId, { type, metadata });
      add('imagePlaneModule', {
        frameOfReferenceUID,
        rows: ny,
        columns: nx,
        imageOrientationPatient: [...rowCosines, ...columnCosines],
        rowCosines,
        columnCosines,
        imagePositionPatient: origin,
        pixelSpacing: [volume.spacing[1], volume.spacing[0]],
        rowPixelSpacing: volume.spacing[1],
        columnPixelSpacing: volume.spacing[0],
      });
      add('generalSeriesModule', { modality: 'MR', seriesInstanceUID: tag });
      add('voiLutModule', { windowCenter: [window.center], windowWidth: [window.width] });
      add('modalityLutModule', { rescaleSlope: 1, rescaleIntercept: 0 });
      this.#imageIds.push(imageId);
    }
    this.#slice = k;
    await this.#viewport.setStack(this.#imageIds, k);
    this.setWindow(window);
  }

  async showSlice(k: number): Promise<void> {
    if (!this.#volume || k === this.#slice) return;
    this.#slice = k;
    await this.#viewport.setImageIdIndex(k);
  }

  setWindow(window: DisplayWindow): void {
    if (!this.#volume) return;
    const half = window.width / 2;
    this.#viewport.setProperties({ voiRange: { lower: window.center - half, upper: window.center + half }, invert: false });
    this.#viewport.render();
  }

  setOverlays(layers: OverlayLayer[]): void {
    this.#layers = layers;
    this.#drawOverlay();
  }

  /** The overlay canvas follows the image: pixel corners mapped through Cornerstone's camera. */
  #drawOverlay = (): void => {
    const canvas = this.#overlay;
    const volume = this.#volume;
    const dpr = window.devicePixelRatio || 1;
    const width = this.#element.clientWidth;
    const height = this.#element.clientHeight;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext('2d')!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!volume || this.#layers.length === 0) return;
    const [nx, ny] = volume.dims;
    const mask = this.#maskCanvas;
    if (mask.width !== nx || mask.height !== ny) {
      mask.width = nx;
      mask.height = ny;
    }
    const image = new ImageData(nx, ny);
    const pixels = new Uint32Array(image.data.buffer);
    for (const layer of this.#layers) paintLabels(pixels, layer.labels, this.#slice * nx * ny, nx, ny, layer.alpha, layer.outline);
    mask.getContext('2d')!.putImageData(image, 0, 0);

    const viewport = this.#viewport;
    const imageId = this.#imageIds[this.#slice];
    if (!imageId) return;
    const corner = (i: number, j: number) => viewport.worldToCanvas(utilities.imageToWorldCoords(imageId, [i, j]) as Types.Point3);
    const p00 = corner(0, 0);
    const p10 = corner(nx, 0);
    const p01 = corner(0, ny);
    ctx.imageSmoothingEnabled = false;
    ctx.setTransform(
      (dpr * (p10[0] - p00[0])) / nx,
      (dpr * (p10[1] - p00[1])) / nx,
      (dpr * (p01[0] - p00[0])) / ny,
      (dpr * (p01[1] - p00[1])) / ny,
      dpr * p00[0],
      dpr * p00[1],
    );
    ctx.drawImage(mask, 0, 0);
  };

  #releaseImages(): void {
    for (const imageId of this.#imageIds) {
      pendingSlices.delete(imageId);
      if (cache.getImageLoadObject(imageId)) cache.removeImageLoadObject(imageId, { force: true });
    }
    this.#imageIds = [];
  }

  destroy(): void {
    this.#resizeObserver.disconnect();
    this.#element.removeEventListener(EVENTS.IMAGE_RENDERED, this.#drawOverlay);
    this.#releaseImages();
    this.#engine.destroy();
  }
}
