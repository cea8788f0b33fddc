/**
 * Sending a segmentation's results back to the PACS (STOW-RS): the DICOM SEG and the PDF report
 * as Encapsulated PDF, both in the study of the images they were made on and referencing them.
 * The server's reply is checked instance by instance: anything it did not store is an error
 * naming the instance and the reason.
 */
import dcmjs from 'dcmjs';
import { UserError } from '../errors.ts';
import { buildEncapsulatedPdf, ENCAPSULATED_PDF_STORAGE } from '../io/dicom-pdf.ts';
import { SEGMENTATION_STORAGE } from '../io/dicom-seg.ts';
import type { Volume } from '../io/volume.ts';
import { PacsError, type DicomWebClient } from './dicomweb.ts';

export interface SentInstance {
  kind: 'seg' | 'pdf';
  sopClassUid: string;
  sopInstanceUid: string;
  seriesUid: string;
}

export interface SendResult {
  studyUid: string;
  sent: SentInstance[];
  warnings: string[];
}

function uidsOf(bytes: Uint8Array, name: string): { sopClassUid: string; sopInstanceUid: string; seriesUid: string; studyUid: string } {
  try {
    const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, { untilTag: '7FE00010' });
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
    return { sopClassUid: String(ds.SOPClassUID ?? ''), sopInstanceUid: String(ds.SOPInstanceUID ?? ''), seriesUid: String(ds.SeriesInstanceUID ?? ''), studyUid: String(ds.StudyInstanceUID ?? '') };
  } catch (err) {
    throw new UserError(`${name}: not a readable DICOM file (${(err as Error).message})`);
  }
}

/**
 * Stores the SEG (a file's bytes, as dicom-seg.ts wrote it) and the report PDF (wrapped here) in
 * the study of `source`. Either may be absent, not both.
 */
export async function sendResults(client: DicomWebClient, input: { seg?: Uint8Array; pdf?: Uint8Array; source: Volume; signal?: AbortSignal }): Promise<SendResult> {
  const studyUid = input.source.meta.studyInstanceUid;
  if (!studyUid) throw new UserError(`"${input.source.meta.id}" was not read from DICOM: there is no PACS study to send results to`);
  const files: { kind: SentInstance['kind']; bytes: Uint8Array; uids: ReturnType<typeof uidsOf> }[] = [];
  if (input.seg) {
    const uids = uidsOf(input.seg, 'the DICOM SEG');
    if (uids.sopClassUid !== SEGMENTATION_STORAGE) throw new UserError(`the segmentation to send is not a DICOM SEG (SOP Class ${uids.sopClassUid})`);
    if (uids.studyUid !== studyUid) throw new UserError(`the DICOM SEG belongs to study ${uids.studyUid}, not to ${studyUid}`);
    files.push({ kind: 'seg', bytes: input.seg, uids });
  }
  if (input.pdf) {
    const segRef = files[0] ? [{ sopClassUid: files[0].uids.sopClassUid, sopInstanceUid: files[0].uids.sopInstanceUid }] : [];
    const { bytes, sopInstanceUid, seriesInstanceUid } = buildEncapsulatedPdf({ pdf: input.pdf, source: input.source, alsoReferences: segRef });
    files.push({ kind: 'pdf', bytes, uids: { sopClassUid: ENCAPSULATED_PDF_STORAGE, sopInstanceUid, seriesUid: seriesInstanceUid, studyUid } });
  }
  if (!files.length) throw new UserError('nothing to send: no segmentation and no report');
  const outcome = await client.store(
    files.map((f) => f.bytes),
    { studyUid, signal: input.signal },
  );
  const storedUids = new Set(outcome.stored.map((s) => s.sopInstanceUid));
  const problems = files
    .filter((f) => !storedUids.has(f.uids.sopInstanceUid))
    .map((f) => {
      const failed = outcome.failed.find((x) => x.sopInstanceUid === f.uids.sopInstanceUid);
      return `${f.kind === 'seg' ? 'DICOM SEG' : 'PDF report'} ${f.uids.sopInstanceUid}: ${failed ? failed.reason : 'not in the list of stored instances'}`;
    });
  if (problems.length) {
    const stored = files.length - problems.length;
    throw new PacsError('stored-partly', `${client.baseUrl}: the PACS stored ${stored} of ${files.length} instances (HTTP ${outcome.status}); ${problems.join('; ')}`, outcome.status);
  }
  return { studyUid, sent: files.map((f) => ({ kind: f.kind, sopClassUid: f.uids.sopClassUid, sopInstanceUid: f.uids.sopInstanceUid, seriesUid: f.uids.seriesUid })), warnings: outcome.warnings };
}
