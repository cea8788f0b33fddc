/**
 * A PDF report as a DICOM Encapsulated PDF (SOP Class 1.2.840.10008.5.1.4.1.1.104.1), in the
 * patient and study of the images it reports on, referencing them (and the segmentation it
 * describes) through SourceInstanceSequence. Written with dcmjs, like dicom-seg.ts.
 */
import dcmjs from 'dcmjs';
import { UserError } from '../errors.ts';
import { encodePart10, newUid } from './dicom-seg.ts';
import type { Volume } from './volume.ts';

export const ENCAPSULATED_PDF_STORAGE = '1.2.840.10008.5.1.4.1.1.104.1';

export interface EncapsulatedPdfOptions {
  pdf: Uint8Array;
  /** the DICOM-sourced volume the report describes (patient, study and referenced instances) */
  source: Volume;
  title?: string;
  /** other instances the report derives from, e.g. the DICOM SEG it describes */
  alsoReferences?: { sopClassUid: string; sopInstanceUid: string }[];
  seriesDescription?: string;
  seriesNumber?: number;
  manufacturer?: string;
  date?: Date;
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined);
const pad2 = (n: number) => String(n).padStart(2, '0');
const dicomDate = (d: Date) => `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}`;
const dicomTime = (d: Date) => `${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}`;

/** The Encapsulated PDF file's bytes and UIDs. */
export function buildEncapsulatedPdf(options: EncapsulatedPdfOptions): { bytes: Uint8Array; sopInstanceUid: string; seriesInstanceUid: string } {
  const { pdf, source } = options;
  if (pdf.byteLength < 5 || Buffer.from(pdf.subarray(0, 5)).toString('latin1') !== '%PDF-') throw new UserError('the report to encapsulate is not a PDF file');
  const { meta } = source;
  const uids = meta.sopInstanceUids;
  if (!meta.studyInstanceUid || !meta.sopClassUid || !uids?.length) throw new UserError(`a DICOM report needs the images it describes to come from DICOM; "${meta.id}" lacks its study or instance UIDs`);
  const extra = (meta.extra?.dicom ?? {}) as Record<string, unknown>;
  const now = options.date ?? new Date();
  const sopInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  // OB values have even length: a PDF of odd length gets one NUL (EncapsulatedDocumentLength keeps the true length)
  const document = new Uint8Array(pdf.byteLength + (pdf.byteLength % 2));
  document.set(pdf);
  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: 'ISO_IR 192',
    InstanceCreationDate: dicomDate(now),
    InstanceCreationTime: dicomTime(now),
    SOPClassUID: ENCAPSULATED_PDF_STORAGE,
    SOPInstanceUID: sopInstanceUid,
    StudyDate: text(extra.StudyDate) ?? '',
    ContentDate: dicomDate(now),
    StudyTime: text(extra.StudyTime) ?? '',
    ContentTime: dicomTime(now),
    AcquisitionDateTime: `${dicomDate(now)}${dicomTime(now)}`,
    AccessionNumber: text(extra.AccessionNumber) ?? '',
    Modality: 'DOC',
    ConversionType: 'WSD',
    Manufacturer: options.manufacturer ?? 'SAM2-UNet Workstation',
    ReferringPhysicianName: text(extra.ReferringPhysicianName) ?? '',
    ...(text(extra.StudyDescription) ? { StudyDescription: text(extra.StudyDescription) } : {}),
    SeriesDescription: (options.seriesDescription ?? 'SAM2-UNet report').slice(0, 64),
    PatientName: text(extra.PatientName) ?? '',
    PatientID: text(extra.PatientID) ?? '',
    PatientBirthDate: text(extra.PatientBirthDate) ?? '',
    PatientSex: text(extra.PatientSex) ?? '',
    StudyInstanceUID: meta.studyInstanceUid,
    SeriesInstanceUID: seriesInstanceUid,
    StudyID: text(extra.StudyID) ?? '',
    SeriesNumber: options.seriesNumber ?? 301,
    InstanceNumber: 1,
    BurnedInAnnotation: 'YES',
    DocumentTitle: (options.title ?? 'Tumour segmentation report').slice(0, 1024),
    ConceptNameCodeSequence: [],
    SourceInstanceSequence: [
      ...uids.map((uid) => ({ ReferencedSOPClassUID: meta.sopClassUid, ReferencedSOPInstanceUID: uid })),
      ...(options.alsoReferences ?? []).map((r) => ({ ReferencedSOPClassUID: r.sopClassUid, ReferencedSOPInstanceUID: r.sopInstanceUid })),
    ],
    MIMETypeOfEncapsulatedDocument: 'application/pdf',
    EncapsulatedDocumentLength: pdf.byteLength,
    EncapsulatedDocument: document.buffer,
    _vrMap: { EncapsulatedDocument: 'OB' },
  };
  return { bytes: encodePart10(dataset, ENCAPSULATED_PDF_STORAGE, sopInstanceUid), sopInstanceUid, seriesInstanceUid };
}

/** The PDF inside an Encapsulated PDF file (for tests and for reading a report back). */
export function readEncapsulatedPdf(bytes: Uint8Array, name: string): { pdf: Uint8Array; studyUid: string; title: string; sources: string[] } {
  const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
  if (ds.SOPClassUID !== ENCAPSULATED_PDF_STORAGE) throw new UserError(`${name}: not an Encapsulated PDF (SOP Class ${String(ds.SOPClassUID)})`);
  const value = ds.EncapsulatedDocument as ArrayBuffer[] | ArrayBuffer;
  const buffer = new Uint8Array(Array.isArray(value) ? value[0]! : value);
  const length = Number(ds.EncapsulatedDocumentLength ?? buffer.byteLength);
  const sources = (Array.isArray(ds.SourceInstanceSequence) ? ds.SourceInstanceSequence : ds.SourceInstanceSequence ? [ds.SourceInstanceSequence] : []) as Record<string, unknown>[];
  return { pdf: buffer.subarray(0, length), studyUid: String(ds.StudyInstanceUID ?? ''), title: String(ds.DocumentTitle ?? ''), sources: sources.map((s) => String(s.ReferencedSOPInstanceUID ?? '')) };
}
