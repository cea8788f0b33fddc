/**
 * A small PDF 1.4 writer: pages with text in the standard Helvetica fonts (WinAnsiEncoding),
 * lines, rectangles, polylines and RGB images (FlateDecode). Page content streams stay
 * uncompressed so the text can be checked (and diffed) as it is.
 */
import { deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];
export type FontName = 'regular' | 'bold';

export const A4: [number, number] = [595.28, 841.89];

// Advance widths (1/1000 em) of characters 32…126 from Adobe's Helvetica and Helvetica-Bold AFM.
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
  556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];
const HELVETICA_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611,
  611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];
/** Non-ASCII characters we print, as WinAnsi codes with their (regular, bold) widths. */
const WIN_ANSI: Record<string, [number, number, number]> = {
  '×': [0xd7, 584, 584],
  '·': [0xb7, 278, 278],
  '•': [0x95, 350, 350],
  '…': [0x85, 1000, 1000],
  '–': [0x96, 556, 556],
  '—': [0x97, 1000, 1000],
  'µ': [0xb5, 556, 611],
  '°': [0xb0, 400, 400],
  '²': [0xb2, 333, 333],
  '³': [0xb3, 333, 333],
};

/** Characters WinAnsi lacks that have a plain spelling: written that way rather than as '?'. */
const SPELLED: Record<string, string> = { '←': '<-', '→': '->', '≤': '<=', '≥': '>=', '≈': '~', '−': '-', '‑': '-', '✓': 'yes' };
const spell = (text: string): string => text.replace(/[←→≤≥≈−‑✓]/g, (c) => SPELLED[c]!);

/** The text as WinAnsi byte values (one char per byte); unknown characters become '?'. */
export function toWinAnsi(text: string): string {
  let out = '';
  for (const ch of spell(text)) {
    const code = ch.codePointAt(0)!;
    if (code >= 32 && code <= 126) out += ch;
    else if (WIN_ANSI[ch]) out += String.fromCharCode(WIN_ANSI[ch][0]);
    else out += '?';
  }
  return out;
}

export function textWidth(text: string, size: number, font: FontName = 'regular'): number {
  const table = font === 'bold' ? HELVETICA_BOLD : HELVETICA;
  let units = 0;
  for (const ch of spell(text)) {
    const code = ch.codePointAt(0)!;
    if (code >= 32 && code <= 126) units += table[code - 32]!;
    else units += WIN_ANSI[ch] ? WIN_ANSI[ch][font === 'bold' ? 2 : 1] : 556;
  }
  return (units * size) / 1000;
}

function escapePdfString(winAnsi: string): string {
  return winAnsi.replace(/[\\()]/g, (c) => `\\${c}`);
}

const n = (v: number): string => (Math.round(v * 100) / 100).toString();
// three decimals keep every 8-bit channel value distinct (round(f · 255) gives it back)
const colour = (c: Rgb): string => c.map((v) => (Math.round((v / 255) * 1000) / 1000).toString()).join(' ');

interface ImageResource {
  name: string;
  width: number;
  height: number;
  data: Uint8Array;
}

/** Drawing on one page, in points with the origin at the TOP left (converted on output). */
export class PdfPage {
  readonly width: number;
  readonly height: number;
  readonly ops: string[] = [];
  readonly images: ImageResource[] = [];
  readonly #document: PdfDocument;

  constructor(document: PdfDocument, size: [number, number]) {
    this.#document = document;
    [this.width, this.height] = size;
  }

  #y(y: number): number {
    return this.height - y;
  }

  /** Text with its baseline at y; `align` against x. */
  text(x: number, y: number, text: string, options: { size?: number; font?: FontName; colour?: Rgb; align?: 'left' | 'right' | 'center' } = {}): void {
    const size = options.size ?? 10;
    const font = options.font ?? 'regular';
    const w = textWidth(text, size, font);
    const left = options.align === 'right' ? x - w : options.align === 'center' ? x - w / 2 : x;
    this.ops.push(
      `BT /${font === 'bold' ? 'F2' : 'F1'} ${n(size)} Tf ${colour(options.colour ?? [0, 0, 0])} rg ${n(left)} ${n(this.#y(y))} Td (${escapePdfString(toWinAnsi(text))}) Tj ET`,
    );
  }

  /** Word-wrapped text; returns the y below the last line. */
  paragraph(x: number, y: number, width: number, text: string, options: { size?: number; font?: FontName; colour?: Rgb; leading?: number } = {}): number {
    const size = options.size ?? 10;
    const leading = options.leading ?? size * 1.3;
    let line = '';
    for (const word of text.split(/\s+/)) {
      const candidate = line ? `${line} ${word}` : word;
      if (line && textWidth(candidate, size, options.font) > width) {
        this.text(x, y, line, options);
        y += leading;
        line = word;
      } else line = candidate;
    }
    if (line) {
      this.text(x, y, line, options);
      y += leading;
    }
    return y;
  }

  line(x1: number, y1: number, x2: number, y2: number, stroke: Rgb, width = 0.5, dash?: number[]): void {
    this.ops.push(`q ${colour(stroke)} RG ${n(width)} w ${dash ? `[${dash.map(n).join(' ')}] 0 d ` : ''}${n(x1)} ${n(this.#y(y1))} m ${n(x2)} ${n(this.#y(y2))} l S Q`);
  }

  rect(x: number, y: number, w: number, h: number, options: { fill?: Rgb; stroke?: Rgb; width?: number }): void {
    const paint = options.fill && options.stroke ? 'B' : options.fill ? 'f' : 'S';
    this.ops.push(
      `q ${options.fill ? `${colour(options.fill)} rg ` : ''}${options.stroke ? `${colour(options.stroke)} RG ${n(options.width ?? 0.5)} w ` : ''}${n(x)} ${n(this.#y(y + h))} ${n(w)} ${n(h)} re ${paint} Q`,
    );
  }

  polyline(points: readonly [number, number][], stroke: Rgb, width = 1): void {
    if (points.length < 2) return;
    const path = points.map(([x, y], i) => `${n(x)} ${n(this.#y(y))} ${i ? 'l' : 'm'}`).join(' ');
    this.ops.push(`q ${colour(stroke)} RG ${n(width)} w 1 j 1 J ${path} S Q`);
  }

  circle(x: number, y: number, r: number, fill: Rgb): void {
    // four Bézier quarter arcs
    const k = 0.5523 * r;
    const cy = this.#y(y);
    this.ops.push(
      `q ${colour(fill)} rg ${n(x + r)} ${n(cy)} m ${n(x + r)} ${n(cy + k)} ${n(x + k)} ${n(cy + r)} ${n(x)} ${n(cy + r)} c ` +
        `${n(x - k)} ${n(cy + r)} ${n(x - r)} ${n(cy + k)} ${n(x - r)} ${n(cy)} c ${n(x - r)} ${n(cy - k)} ${n(x - k)} ${n(cy - r)} ${n(x)} ${n(cy - r)} c ` +
        `${n(x + k)} ${n(cy - r)} ${n(x + r)} ${n(cy - k)} ${n(x + r)} ${n(cy)} c f Q`,
    );
  }

  /** An 8-bit RGB image (rows top to bottom) drawn in the box (x, y, w, h). */
  image(rgb: Uint8Array, pixelWidth: number, pixelHeight: number, x: number, y: number, w: number, h: number): void {
    const name = this.#document.nextImageName();
    this.images.push({ name, width: pixelWidth, height: pixelHeight, data: deflateSync(rgb) });
    this.ops.push(`q ${n(w)} 0 0 ${n(h)} ${n(x)} ${n(this.#y(y + h))} cm /${name} Do Q`);
  }
}

export class PdfDocument {
  readonly pages: PdfPage[] = [];
  readonly title: string;
  #imageCount = 0;

  constructor(title: string) {
    this.title = title;
  }

  addPage(size: [number, number] = A4): PdfPage {
    const page = new PdfPage(this, size);
    this.pages.push(page);
    return page;
  }

  nextImageName(): string {
    return `Im${++this.#imageCount}`;
  }

  /** The file bytes: objects, cross-reference table and trailer. */
  toBytes(): Uint8Array {
    const chunks: Buffer[] = [];
    const offsets: number[] = [];
    let length = 0;
    const push = (data: string | Uint8Array): void => {
      const buffer = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      chunks.push(buffer);
      length += buffer.length;
    };
    // object numbers: 1 catalog, 2 page tree, 3 F1, 4 F2, 5 info, then per page: page, contents, images
    const objects: (string | [string, Uint8Array])[] = [];
    const pageRefs: number[] = [];
    let next = 6;
    const pageObjects: { page: PdfPage; pageId: number; contentId: number; imageIds: number[] }[] = [];
    for (const page of this.pages) {
      const pageId = next++;
      const contentId = next++;
      const imageIds = page.images.map(() => next++);
      pageRefs.push(pageId);
      pageObjects.push({ page, pageId, contentId, imageIds });
    }
    objects[1] = '<< /Type /Catalog /Pages 2 0 R >>';
    objects[2] = `<< /Type /Pages /Kids [${pageRefs.map((id) => `${id} 0 R`).join(' ')}] /Count ${pageRefs.length} >>`;
    objects[3] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>';
    objects[4] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>';
    objects[5] = `<< /Title (${escapePdfString(toWinAnsi(this.title))}) /Producer (SAM2-UNet Workstation) >>`;
    for (const { page, pageId, contentId, imageIds } of pageObjects) {
      const xobjects = page.images.map((img, i) => `/${img.name} ${imageIds[i]} 0 R`).join(' ');
      objects[pageId] =
        `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${n(page.width)} ${n(page.height)}] ` +
        `/Resources << /Font << /F1 3 0 R /F2 4 0 R >>${xobjects ? ` /XObject << ${xobjects} >>` : ''} >> /Contents ${contentId} 0 R >>`;
      const content = Buffer.from(page.ops.join('\n'), 'latin1');
      objects[contentId] = [`<< /Length ${content.length} >>`, content];
      page.images.forEach((img, i) => {
        objects[imageIds[i]!] = [
          `<< /Type /XObject /Subtype /Image /Width ${img.width} /Height ${img.height} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode /Length ${img.data.length} >>`,
          img.data,
        ];
      });
    }
    push('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n');
    for (let id = 1; id < next; id++) {
      offsets[id] = length;
      const object = objects[id]!;
      if (typeof object === 'string') push(`${id} 0 obj\n${object}\nendobj\n`);
      else {
        push(`${id} 0 obj\n${object[0]}\nstream\n`);
        push(object[1]);
        push('\nendstream\nendobj\n');
      }
    }
    const xref = length;
    push(`xref\n0 ${next}\n0000000000 65535 f \n`);
    for (let id = 1; id < next; id++) push(`${String(offsets[id]).padStart(10, '0')} 00000 n \n`);
    push(`trailer\n<< /Size ${next} /Root 1 0 R /Info 5 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
    return new Uint8Array(Buffer.concat(chunks));
  }
}
