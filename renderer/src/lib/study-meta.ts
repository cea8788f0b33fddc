/** How a study's identity reads in the study list and the header (one place for both). */
import type { SequenceSummary, StudySummary } from '../../../main/core/api.ts';
import { SEQUENCE_ROLE_LABELS } from '../../../main/core/api.ts';

/** DICOM DA (YYYYMMDD) as an ISO date; other text unchanged. */
export function formatDicomDate(value: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : value;
}

/** Patient name · ID · study date · study description · modality, whichever are known. */
export function metadataLine(study: StudySummary): string {
  const m = study.metadata ?? {};
  return [m.patientName, m.patientId ? `ID ${m.patientId}` : undefined, m.studyDate ? formatDicomDate(m.studyDate) : undefined, m.studyDescription, m.modality]
    .filter(Boolean)
    .join(' · ');
}

/** A sequence as the user knows it: its series description (DICOM) or role, e.g. "AX T2 FLAIR (FLAIR)". */
export function sequenceLabel(sequence: SequenceSummary): string {
  const role = SEQUENCE_ROLE_LABELS[sequence.name as keyof typeof SEQUENCE_ROLE_LABELS];
  const description = sequence.description?.trim();
  if (!description || description === role || description.toLowerCase() === sequence.name) return role ?? sequence.name;
  return role ? `${description} (${role})` : description;
}
