/**
 * One orthographic view (axial, sagittal or coronal): a Cornerstone3D stack viewport fed with the
 * planes of a VolumeData (local images, no image-loader round trips), plus our canvas overlay for
 * label maps and the crosshair, kept aligned with Cornerstone's camera through worldToCanvas on
 * every render.
 *
 * Why stack viewports of resliced planes rather than Cornerstone volume viewports: volume
 * viewports need WebGL, and the CPU path must work too (software GL, broken drivers, `?render=cpu`);
 * stack viewports run on both. The planes come from planes.ts, the one place that says how a
 * view maps to voxels. Camera changes (pan, zoom) go through Cornerstone's camera in world
 * coordinates, which both paths implement the same way.
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
import type { DisplayWindow, Vec3, ViewConvention, VolumeData } from '../../../main/core/api.ts';
import { differencePlane, paintPlane } from './overlay.ts';
import type { OverlaySource } from './overlay.ts';
import { extractPlane, pixelOf, planeAxes, planeGeometry, planeSize, viewMarkers, voxelAt } from './planes.ts';
import type { PlaneAxes, ViewMarkers, ViewName } from './planes.ts';

/** What the overlay shows; null hides it. */
export interface OverlayInput {
  source: OverlaySource;
  prediction: Uint8Array | null;
  groundTruth: Uint8Array | null;
  lut: Uint32Array;
  outline: boolean;
}

/** Crosshair line colour per view: each view's slice is drawn in its colour on the other two. */
export const VIEW_COLOURS: Record<ViewName, string> = { axial: '#4da3ff', sagittal: '#ff9f43', coronal: '#c56cf0' };

/**
 * 'none', 'software' (SwiftShader, llvmpipe: headless machines, VMs) or 'hardware'. Software GL
 * uses the CPU path: both paths run on the CPU there, and the CPU path skips WebGL's emulation.
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

interface PendingPlane {
  volume: VolumeData;
  axes: PlaneAxes;
  s: number;
  /** the display window when the stack was made (the image's own window, see the loader) */
  window: DisplayWindow;
  options: Omit<Parameters<typeof imageLoader.createAndCacheLocalImage>[1], 'scalarData'>;
}
/** Planes registered by setVolume, turned into images by the loader on first use. */
const pendingPlanes = new Map<string, PendingPlane>();

/**
 * Real values of a plane in a type Cornerstone takes, in a buffer of its own. Colour planes stay
 * interleaved RGB: Cornerstone makes an image with three samples per pixel a colour image, and
 * applies the window to each channel.
 */
function planeScalars({ volume, axes, s }: PendingPlane): Int16Array | Uint16Array | Uint8Array | Float32Array {
  const { width, height } = planeSize(volume, axes);
  const components = volume.components;
  const n = width * height * components;
  const data = volume.data;
  const plain = volume.slope === 1 && volume.intercept === 0;
  if (plain && data instanceof Int16Array) return extractPlane(data, volume, axes, s, new Int16Array(n), components);
  if (plain && data instanceof Uint16Array) return extractPlane(data, volume, axes, s, new Uint16Array(n), components);
  if (plain && data instanceof Uint8Array) return extractPlane(data, volume, axes, s, new Uint8Array(n), components);
  const out = extractPlane(data, volume, axes, s, new Float32Array(n), components);
  if (!plain) for (let i = 0; i < n; i++) out[i] = out[i]! * volume.slope + volume.intercept;
  return out;
}

let engine: RenderingEngine | null = null;
let nextViewport = 0;
let nextStack = 0;

/** Cornerstone once per page: CPU or WebGL, the plane loader, one rendering engine for all views. */
function sharedEngine(): RenderingEngine {
  if (engine) return engine;
  init();
  // `?render=cpu` forces the CPU path (a way out for broken GPU drivers), `?render=gpu` WebGL.
  const requested = new URLSearchParams(window.location.search).get('render');
  if (requested === 'cpu' || (requested !== 'gpu' && webglKind() !== 'hardware')) setUseCPURendering(true);
  imageLoader.registerImageLoader('sam2unet', (imageId: string) => {
    const pending = pendingPlanes.get(imageId);
    if (!pending) return { promise: Promise.reject(new Error(`${imageId} is no longer shown`)) };
    pendingPlanes.delete(imageId);
    const image = imageLoader.createAndCacheLocalImage(imageId, { ...pending.options, scalarData: planeScalars(pending) });
    // Cornerstone 5 marks a three-sample local image as colour but says it has one component,
    // which its WebGL path believes (its CPU path reads the colour flag)
    if (pending.volume.components === 3) image.numberOfComponents = 3;
    // A local image has window 0/0, from which the WebGL path builds its first grey ramp as
    // lower 0 → upper −1: a falling ramp that later window changes only rescale, so every grey
    // came out inverted. With the real window the ramp rises from the start.
    image.windowCenter = pending.window.center;
    image.windowWidth = Math.max(1e-6, pending.window.width);
    return { promise: Promise.resolve(image) };
  });
  engine = new RenderingEngine('sam2unet');
  return engine;
}

/** What a view reports about itself, for the markers, scale bar and error line around it. */
export interface ViewerEvents {
  /** Cornerstone drew slice `slice` (any earlier error of the view is over) */
  rendered?: (slice: number) => void;
  /** showing what was last asked for failed */
  failed?: (message: string) => void;
  /** the camera or the view's size changed: the letters on its edges, millimetres per CSS pixel across it */
  geometry?: (geometry: ViewGeometry) => void;
  /** the overlay was drawn over slice `slice` with `labelled` non-zero label pixels (0 without a mask) */
  overlay?: (slice: number, labelled: number) => void;
}

export interface ViewGeometry {
  markers: ViewMarkers;
  /** horizontal millimetres per CSS pixel (spacing and zoom) */
  mmPerPixel: number;
}

/** What a view should show; show() converges on the latest one. */
interface Target {
  volume: VolumeData;
  slice: number;
  window: DisplayWindow;
  convention: ViewConvention;
}

/** The editor's brush outline: centred on voxel `ijk`, `radiusMm` across in the view's plane. */
export interface BrushCursor {
  ijk: Vec3;
  radiusMm: number;
  colour: string;
}

/** A measurement drawn over the image: a segment between two voxel positions (i, j, k, fractional). */
export interface MeasurementLine {
  from: Vec3;
  to: Vec3;
  colour: string;
}

export class PlaneViewer {
  readonly view: ViewName;
  /** 'webgl' or 'cpu': which Cornerstone rendering path is in use */
  readonly backend: 'webgl' | 'cpu';
  readonly #element: HTMLDivElement;
  readonly #overlay: HTMLCanvasElement;
  readonly #engine: RenderingEngine;
  readonly #viewportId: string;
  #volume: VolumeData | null = null;
  #axes: PlaneAxes | null = null;
  #imageIds: string[] = [];
  #slice = 0;
  #input: OverlayInput | null = null;
  #cursor: Vec3 | null = null;
  #lines: MeasurementLine[] = [];
  #brush: BrushCursor | null = null;
  #convention: ViewConvention = 'radiological';
  #maskCanvas = document.createElement('canvas');
  #resizeObserver: ResizeObserver;
  readonly #events: ViewerEvents;
  #target: Target | null = null;
  #applying: Promise<void> | null = null;
  #geometryKey = '';

  constructor(element: HTMLDivElement, overlay: HTMLCanvasElement, view: ViewName, events: ViewerEvents = {}) {
    this.#events = events;
    this.#engine = sharedEngine();
    this.backend = getShouldUseCPURendering() ? 'cpu' : 'webgl';
    this.view = view;
    this.#element = element;
    this.#overlay = overlay;
    this.#viewportId = `${view}-${nextViewport++}`;
    this.#engine.enableElement({ viewportId: this.#viewportId, type: Enums.ViewportType.STACK, element, defaultOptions: { background: [0, 0, 0] } });
    element.addEventListener(EVENTS.IMAGE_RENDERED, this.#drawOverlay);
    element.addEventListener(EVENTS.IMAGE_RENDERED, this.#rendered);
    element.addEventListener(EVENTS.CAMERA_MODIFIED, this.#drawOverlay);
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
   * Shows slice `slice` of `volume` in `convention`. Calls may come faster than Cornerstone
   * loads (a study switch changes the volume and the slice in quick succession): each call only
   * sets the target, and one loop at a time moves the view to the latest target, so a slice is
   * never asked of a stack it does not belong to. Resolves when the view shows the target
   * current at that moment; a failure is reported through `failed` only if it concerns what is
   * still wanted.
   */
  show(volume: VolumeData, slice: number, window: DisplayWindow, convention: ViewConvention): Promise<void> {
    this.#target = { volume, slice, window, convention };
    this.#applying ??= this.#apply().finally(() => (this.#applying = null));
    return this.#applying;
  }

  async #apply(): Promise<void> {
    for (;;) {
      const target = this.#target;
      if (!target) return;
      const restack = target.volume !== this.#volume || target.convention !== this.#convention;
      const count = planeSize(target.volume, planeAxes(target.volume, this.view, target.convention)).count;
      const slice = Math.max(0, Math.min(count - 1, target.slice));
      if (!restack && slice === this.#slice) return;
      try {
        if (restack) await this.#setVolume(target.volume, slice, target.window, target.convention);
        else {
          this.#slice = slice;
          await this.#viewport.setImageIdIndex(slice);
        }
      } catch (err) {
        // what failed is not shown: the next show() of the same target tries again
        if (restack) this.#volume = null;
        else this.#slice = -1;
        if (this.#target !== target) continue;
        this.#events.failed?.(`could not show ${this.view} slice ${slice + 1}: ${err instanceof Error ? err.message : String(err)}`);
        // nothing more to try until the next show()
        this.#target = null;
        return;
      }
    }
  }

  /**
   * Replaces the stack with `volume`'s planes, at slice `s`. Only metadata is registered up
   * front; each plane becomes a Cornerstone image when it is first shown, so opening a volume
   * costs one plane per view, not all of them.
   */
  async #setVolume(volume: VolumeData, s: number, window: DisplayWindow, convention: ViewConvention): Promise<void> {
    this.#releaseImages();
    this.#volume = volume;
    this.#convention = convention;
    const axes = planeAxes(volume, this.view, convention);
    this.#axes = axes;
    const { width, height, count } = planeSize(volume, axes);
    const tag = `${volume.studyId}/${volume.sequence}/${this.view}/${nextStack++}`;
    const frameOfReferenceUID = `sam2unet.${volume.studyId}`;
    for (let k = 0; k < count; k++) {
      const imageId = `sam2unet:${tag}/${k}`;
      const g = planeGeometry(volume, axes, k);
      pendingPlanes.set(imageId, {
        volume,
        axes,
        s: k,
        window,
        options: {
          dimensions: [width, height],
          spacing: [g.columnSpacing, g.rowSpacing],
          origin: g.origin as Types.Point3,
          direction: [...g.rowCosines, ...g.columnCosines, ...g.normal] as Types.Mat3,
          frameOfReferenceUID,
        },
      });
      const add = (type: string, metadata: unknown) => utilities.genericMetadataProvider.addRaw(imageId, { type, metadata });
      add('imagePlaneModule', {
        frameOfReferenceUID,
        rows: height,
        columns: width,
        imageOrientationPatient: [...g.rowCosines, ...g.columnCosines],
        rowCosines: g.rowCosines,
        columnCosines: g.columnCosines,
        imagePositionPatient: g.origin,
        pixelSpacing: [g.rowSpacing, g.columnSpacing],
        rowPixelSpacing: g.rowSpacing,
        columnPixelSpacing: g.columnSpacing,
      });
      add('generalSeriesModule', { modality: volume.components === 3 ? 'OT' : 'MR', seriesInstanceUID: tag });
      add('voiLutModule', { windowCenter: [window.center], windowWidth: [window.width] });
      add('modalityLutModule', { rescaleSlope: 1, rescaleIntercept: 0 });
      this.#imageIds.push(imageId);
    }
    this.#slice = s;
    await this.#viewport.setStack(this.#imageIds, s);
    this.setWindow(this.#target?.window ?? window);
  }

  setWindow(window: DisplayWindow): void {
    if (!this.#volume) return;
    const half = window.width / 2;
    this.#viewport.setProperties({ voiRange: { lower: window.center - half, upper: window.center + half }, invert: false });
    this.#viewport.render();
  }

  setOverlay(input: OverlayInput | null): void {
    this.#input = input;
    this.#drawOverlay();
  }

  /** Lines drawn on the slices they lie in (both ends within half a voxel of the slice). */
  setMeasurements(lines: MeasurementLine[]): void {
    this.#lines = lines;
    this.#drawOverlay();
  }

  setCursor(cursor: Vec3 | null): void {
    this.#cursor = cursor;
    this.#drawOverlay();
  }

  /** The brush outline under the pointer (null hides it). */
  setBrush(brush: BrushCursor | null): void {
    if (brush === this.#brush || (brush && this.#brush && brush.radiusMm === this.#brush.radiusMm && brush.colour === this.#brush.colour && brush.ijk.every((v, i) => v === this.#brush!.ijk[i]))) return;
    this.#brush = brush;
    this.#drawOverlay();
  }

  /** Multiplies the zoom (>1 magnifies), keeping the image centre where it is. */
  zoomBy(factor: number): void {
    if (!this.#volume) return;
    const viewport = this.#viewport;
    viewport.setZoom(Math.max(0.1, Math.min(50, viewport.getZoom() * factor)));
    viewport.render();
  }

  /**
   * Moves the image by (dx, dy) CSS pixels: the camera moves the opposite way, in world
   * coordinates. (Cornerstone's setPan is no good here: on its CPU path it takes the pan as a
   * world position of the focal point, so any pan of a volume not centred on the world origin
   * moved the image out of the view.)
   */
  panBy(dx: number, dy: number): void {
    if (!this.#volume) return;
    const viewport = this.#viewport;
    const cx = this.#element.clientWidth / 2;
    const cy = this.#element.clientHeight / 2;
    const from = viewport.canvasToWorld([cx, cy] as Types.Point2);
    const to = viewport.canvasToWorld([cx + dx, cy + dy] as Types.Point2);
    const shift = (p: Types.Point3) => [p[0] + from[0] - to[0], p[1] + from[1] - to[1], p[2] + from[2] - to[2]] as Types.Point3;
    const camera = viewport.getCamera();
    viewport.setCamera({ focalPoint: shift(camera.focalPoint!), position: shift(camera.position!) });
    viewport.render();
  }

  resetCamera(): void {
    if (!this.#volume) return;
    this.#viewport.resetCamera();
    this.#viewport.render();
  }

  get zoom(): number {
    return this.#volume ? this.#viewport.getZoom() : 1;
  }

  /** The voxel under a point of the element (CSS pixels from its top-left), or null off the image. */
  pick(x: number, y: number): Vec3 | null {
    const volume = this.#volume;
    const axes = this.#axes;
    const imageId = this.#imageIds[this.#slice];
    if (!volume || !axes || !imageId) return null;
    const world = this.#viewport.canvasToWorld([x, y] as Types.Point2);
    const [c, r] = utilities.worldToImageCoords(imageId, world) as [number, number];
    const { width, height } = planeSize(volume, axes);
    const col = Math.floor(c);
    const row = Math.floor(r);
    if (col < 0 || row < 0 || col >= width || row >= height) return null;
    return voxelAt(volume, axes, col, row, this.#slice);
  }

  #rendered = (): void => {
    const index = this.#viewport.getCurrentImageIdIndex();
    if (this.#volume && index >= 0) this.#events.rendered?.(index);
  };

  /**
   * Whether the viewport has an image to map through. While setStack is under way it has none: a
   * view mounted with a prediction there already (a cohort's case) is asked to draw before it has
   * rendered; it draws when it renders.
   */
  #hasImage(): boolean {
    return this.#viewport.getImageData() !== undefined;
  }

  /** The letters on the edges and the scale, read from the camera: what is on screen, whatever the data's direction. */
  #reportGeometry(): void {
    const report = this.#events.geometry;
    if (!report || !this.#volume) return;
    const viewport = this.#viewport;
    const cx = this.#element.clientWidth / 2;
    const cy = this.#element.clientHeight / 2;
    if (!(cx > 0 && cy > 0)) return;
    if (!this.#hasImage()) return;
    const o = viewport.canvasToWorld([cx, cy] as Types.Point2);
    const r = viewport.canvasToWorld([cx + 1, cy] as Types.Point2);
    const d = viewport.canvasToWorld([cx, cy + 1] as Types.Point2);
    const right: Vec3 = [r[0] - o[0], r[1] - o[1], r[2] - o[2]];
    const down: Vec3 = [d[0] - o[0], d[1] - o[1], d[2] - o[2]];
    const geometry = { markers: viewMarkers(right, down), mmPerPixel: Math.hypot(...right) };
    const key = JSON.stringify(geometry);
    if (key === this.#geometryKey || !Number.isFinite(geometry.mmPerPixel)) return;
    this.#geometryKey = key;
    report(geometry);
  }

  /** The overlay canvas follows the image: pixel corners mapped through Cornerstone's camera. */
  #drawOverlay = (): void => {
    this.#reportGeometry();
    const canvas = this.#overlay;
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
    const volume = this.#volume;
    const axes = this.#axes;
    const imageId = this.#imageIds[this.#slice];
    if (!volume || !axes || !imageId) return;
    const { width: w, height: h } = planeSize(volume, axes);
    const viewport = this.#viewport;
    if (!this.#hasImage()) return;
    const corner = (i: number, j: number) => viewport.worldToCanvas(utilities.imageToWorldCoords(imageId, [i, j]) as Types.Point3);
    const p00 = corner(0, 0);
    const p10 = corner(w, 0);
    const p01 = corner(0, h);
    // image pixel (i, j) → device pixels of the overlay canvas
    ctx.setTransform((dpr * (p10[0] - p00[0])) / w, (dpr * (p10[1] - p00[1])) / w, (dpr * (p01[0] - p00[0])) / h, (dpr * (p01[1] - p00[1])) / h, dpr * p00[0], dpr * p00[1]);
    const labels = this.#labelPlane(volume, axes, w, h);
    if (this.#events.overlay) {
      let labelled = 0;
      if (labels) for (let i = 0; i < labels.length; i++) if (labels[i]) labelled++;
      this.#events.overlay(this.#slice, labelled);
    }
    if (labels) {
      const mask = this.#maskCanvas;
      if (mask.width !== w || mask.height !== h) {
        mask.width = w;
        mask.height = h;
      }
      const image = new ImageData(w, h);
      paintPlane(new Uint32Array(image.data.buffer), labels, w, h, this.#input!.lut, this.#input!.outline);
      mask.getContext('2d')!.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(mask, 0, 0);
    }
    if (this.#cursor) this.#drawCrosshair(ctx, volume, axes, w, h, dpr);
    this.#drawMeasurements(ctx, volume, axes, dpr);
    if (this.#brush) this.#drawBrush(ctx, volume, axes, dpr);
  };

  /** The brush as an ellipse in image pixels (a circle in mm whatever the pixel spacing), on the slice it paints. */
  #drawBrush(ctx: CanvasRenderingContext2D, volume: VolumeData, axes: PlaneAxes, dpr: number): void {
    const brush = this.#brush!;
    const { c, r } = pixelOf(volume, axes, brush.ijk);
    const scale = Math.hypot(ctx.getTransform().a, ctx.getTransform().b) || 1;
    ctx.lineWidth = (1.5 * dpr) / scale;
    ctx.strokeStyle = brush.colour;
    ctx.beginPath();
    ctx.ellipse(c + 0.5, r + 0.5, brush.radiusMm / volume.spacing[axes.col.axis], brush.radiusMm / volume.spacing[axes.row.axis], 0, 0, 2 * Math.PI);
    ctx.stroke();
  }

  #drawMeasurements(ctx: CanvasRenderingContext2D, volume: VolumeData, axes: PlaneAxes, dpr: number): void {
    const scale = Math.hypot(ctx.getTransform().a, ctx.getTransform().b) || 1;
    ctx.lineWidth = (2 * dpr) / scale;
    for (const line of this.#lines) {
      const a = pixelOf(volume, axes, line.from);
      const b = pixelOf(volume, axes, line.to);
      if (Math.abs(a.s - this.#slice) > 0.5 || Math.abs(b.s - this.#slice) > 0.5) continue;
      ctx.beginPath();
      ctx.strokeStyle = line.colour;
      ctx.moveTo(a.c + 0.5, a.r + 0.5);
      ctx.lineTo(b.c + 0.5, b.r + 0.5);
      ctx.stroke();
    }
  }

  #labelPlane(volume: VolumeData, axes: PlaneAxes, w: number, h: number): Uint8Array | null {
    const input = this.#input;
    if (!input) return null;
    const plane = (data: Uint8Array) => extractPlane(data, volume, axes, this.#slice, new Uint8Array(w * h));
    if (input.source === 'prediction') return input.prediction ? plane(input.prediction) : null;
    if (input.source === 'groundTruth') return input.groundTruth ? plane(input.groundTruth) : null;
    if (!input.prediction || !input.groundTruth) return null;
    return differencePlane(plane(input.prediction), plane(input.groundTruth), new Uint8Array(w * h));
  }

  /** The other two views' planes as lines through the cursor voxel's centre, in their colours. */
  #drawCrosshair(ctx: CanvasRenderingContext2D, volume: VolumeData, axes: PlaneAxes, w: number, h: number, dpr: number): void {
    const { c, r } = pixelOf(volume, axes, this.#cursor!);
    const viewOf = (axis: number): ViewName => (axis === 0 ? 'sagittal' : axis === 1 ? 'coronal' : 'axial');
    // lines are 1 device pixel wide whatever the zoom: undo the image scale for the stroke
    const scale = Math.hypot(ctx.getTransform().a, ctx.getTransform().b) || 1;
    ctx.lineWidth = dpr / scale;
    ctx.beginPath();
    ctx.strokeStyle = VIEW_COLOURS[viewOf(axes.col.axis)];
    ctx.moveTo(c + 0.5, 0);
    ctx.lineTo(c + 0.5, h);
    ctx.stroke();
    ctx.beginPath();
    ctx.strokeStyle = VIEW_COLOURS[viewOf(axes.row.axis)];
    ctx.moveTo(0, r + 0.5);
    ctx.lineTo(w, r + 0.5);
    ctx.stroke();
  }

  #releaseImages(): void {
    for (const imageId of this.#imageIds) {
      pendingPlanes.delete(imageId);
      if (cache.getImageLoadObject(imageId)) cache.removeImageLoadObject(imageId, { force: true });
    }
    this.#imageIds = [];
  }

  destroy(): void {
    this.#resizeObserver.disconnect();
    this.#element.removeEventListener(EVENTS.IMAGE_RENDERED, this.#drawOverlay);
    this.#element.removeEventListener(EVENTS.IMAGE_RENDERED, this.#rendered);
    this.#target = null;
    this.#element.removeEventListener(EVENTS.CAMERA_MODIFIED, this.#drawOverlay);
    this.#releaseImages();
    this.#engine.disableElement(this.#viewportId);
  }
}
