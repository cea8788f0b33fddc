/**
 * Every element of one DICOM file as text, for the tag viewer: tag, VR, dictionary keyword and
 * value, with sequences nested. dcmjs reads it because it carries the data dictionary (keywords,
 * and VRs for implicit-VR files), which the reader proper (dicom-parser) does without.
 */
import dcmjs from 'dcmjs';
import type { DicomTag } from '../../api.ts';
import { FileError, errorMessage } from '../../errors.ts';
import { readRegularFile } from '../../util/fs.ts';

/** Longer values are cut (with their length said), so a viewer never receives a pixel dump. */
const MAX_VALUE_CHARS = 256;
const MAX_VALUES = 32;
const BINARY_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);

type Element = { vr: string; Value?: unknown[]; InlineBinary?: string };

function keywordOf(tag: string): string {
  return dcmjs.data.DicomMetaDictionary.dictionary[tag]?.name ?? '';
}

function punctuate(hex: string): string {
  const upper = hex.toUpperCase();
  return `(${upper.slice(0, 4)},${upper.slice(4, 8)})`;
}

function byteLength(value: unknown): number {
  if (value instanceof ArrayBuffer) return value.byteLength;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  return 0;
}

function valueText(vr: string, values: unknown[]): string {
  if (BINARY_VRS.has(vr)) {
    const bytes = values.reduce<number>((n, v) => n + byteLength(v), 0);
    return `(binary, ${bytes} bytes${values.length > 1 ? ` in ${values.length} fragments` : ''})`;
  }
  const parts = values.slice(0, MAX_VALUES).map((v) => {
    if (v && typeof v === 'object' && 'Alphabetic' in v) return String((v as { Alphabetic?: unknown }).Alphabetic ?? '');
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return `(binary, ${byteLength(v)} bytes)`;
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
  let text = parts.join('\\');
  if (values.length > MAX_VALUES) text += `\\… (${values.length} values)`;
  if (text.length > MAX_VALUE_CHARS) text = `${text.slice(0, MAX_VALUE_CHARS)}… (${text.length} characters)`;
  return text;
}

function elements(dataset: Record<string, Element>): DicomTag[] {
  return Object.keys(dataset)
    .sort()
    .map((hex) => {
      const element = dataset[hex]!;
      const tag = punctuate(hex);
      const values = element.Value ?? [];
      if (element.vr === 'SQ') {
        const items = values.map((item) => elements((item ?? {}) as Record<string, Element>));
        return { tag, vr: 'SQ', keyword: keywordOf(tag), value: `${items.length} item${items.length === 1 ? '' : 's'}`, items };
      }
      return { tag, vr: element.vr, keyword: keywordOf(tag), value: element.InlineBinary ? '(binary)' : valueText(element.vr, values) };
    });
}

/** The file meta group and the dataset of `file`, in tag order. */
export async function readDicomTags(file: string): Promise<DicomTag[]> {
  const bytes = await readRegularFile(file);
  let dict;
  try {
    dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, { ignoreErrors: true });
  } catch (err) {
    throw new FileError(file, `cannot parse DICOM: ${errorMessage(err)}`);
  }
  return [...elements(dict.meta as Record<string, Element>), ...elements(dict.dict as Record<string, Element>)];
}
