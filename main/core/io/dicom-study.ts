/**
 * From DICOM series to studies. A folder from a scanner or PACS usually holds one patient's
 * examination: a T1, a T1 after contrast, a T2 and a FLAIR, often with localizers and diffusion.
 * The structural series of one examination (StudyInstanceUID) that share a frame of reference
 * and overlap become ONE study with the BraTS sequence names, like a BraTS folder; series on
 * another grid are resampled onto the FLAIR's grid through world coordinates (trilinear) and the
 * study says so. Everything else (unrecognised series, a second FLAIR, another frame of
 * reference, no overlap) stays a study of its own, with a note saying why.
 */
import { FileError } from '../errors.ts';
import { overlapFraction, resampleToGrid } from './resample.ts';
import { SEQUENCE_ORDER, recogniseSequence, type Recognition } from './sequences.ts';
import type { BratsSequence, Study, StudyMetadata, StudySeries } from './study.ts';
import { sameGrid, type Volume } from './volume.ts';

/** Below this share of the FLAIR's box inside another series, the two do not image the same anatomy. */
const MIN_OVERLAP = 0.5;

function dicomTags(volume: Volume): Record<string, unknown> {
  return (volume.meta.extra?.dicom as Record<string, unknown> | undefined) ?? {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Recognition of one volume from the tags its reader kept. */
export function recogniseVolume(volume: Volume): Recognition {
  if (volume.components !== 1) return { role: null, reason: 'a colour image' };
  const tags = dicomTags(volume);
  return recogniseSequence({
    modality: volume.meta.modality || undefined,
    seriesDescription: volume.meta.description || text(tags.SeriesDescription),
    protocolName: text(tags.ProtocolName),
    sequenceName: text(tags.SequenceName),
    contrastAgent: text(tags.ContrastBolusAgent),
    repetitionTime: num(tags.RepetitionTime),
    echoTime: num(tags.EchoTime),
    inversionTime: num(tags.InversionTime),
  });
}

/** DICOM PN as people read it: "DOE^JANE" → "DOE, JANE". */
export function personName(value: unknown): string | undefined {
  const name = text(value);
  if (!name) return undefined;
  const [family, given, middle, prefix, suffix] = name.split('=')[0]!.split('^').map((s) => s.trim());
  const rest = [prefix, given, middle, suffix].filter(Boolean).join(' ');
  return family && rest ? `${family}, ${rest}` : family || rest || undefined;
}

export function dicomMetadata(volume: Volume): StudyMetadata {
  const tags = dicomTags(volume);
  const out: StudyMetadata = {};
  const patientName = personName(tags.PatientName);
  if (patientName) out.patientName = patientName;
  const patientId = text(tags.PatientID);
  if (patientId) out.patientId = patientId;
  const studyDate = text(tags.StudyDate);
  if (studyDate) out.studyDate = studyDate;
  const studyDescription = text(tags.StudyDescription);
  if (studyDescription) out.studyDescription = studyDescription;
  if (volume.meta.modality) out.modality = volume.meta.modality;
  return out;
}

function seriesName(volume: Volume): string {
  return volume.meta.description || `series ${volume.meta.id}`;
}

interface Candidate {
  volume: Volume;
  recognition: Recognition;
}

/**
 * The studies of a set of DICOM volumes (one loadDicom call); `source` is what the user opened.
 * Each series is either a sequence of a multi-sequence study or a study of its own.
 */
export function assembleDicomStudies(volumes: Volume[], source: string): { studies: Study[]; notes: string[] } {
  const notes: string[] = [];
  const studies: Study[] = [];
  // one examination = one StudyInstanceUID; series without one cannot be grouped with anything
  const exams = new Map<string, Volume[]>();
  volumes.forEach((volume, i) => {
    const key = volume.meta.studyInstanceUid ?? `#${i}`;
    exams.set(key, [...(exams.get(key) ?? []), volume]);
  });
  for (const exam of exams.values()) {
    const candidates: Candidate[] = exam.map((volume) => ({ volume, recognition: recogniseVolume(volume) }));
    const recognised = candidates.filter((c) => c.recognition.role !== null);
    // the fullest series of a role first (a sagittal FLAIR of 20 slices loses to the axial volume)
    recognised.sort((a, b) => SEQUENCE_ORDER.indexOf(a.recognition.role!) - SEQUENCE_ORDER.indexOf(b.recognition.role!) || b.volume.data.length - a.volume.data.length);
    const reference = recognised.find((c) => c.recognition.role === 'flair') ?? recognised[0];
    const members: Candidate[] = [];
    const apart = new Map<Candidate, string>();
    if (reference) {
      for (const c of recognised) {
        const role = c.recognition.role!;
        if (c === reference) {
          members.push(c);
          continue;
        }
        const reason = c.volume === reference.volume ? undefined : joinProblem(reference.volume, c.volume);
        if (reason) apart.set(c, reason);
        else if (members.some((m) => m.recognition.role === role)) apart.set(c, `the study has a ${role} series already (${seriesName(members.find((m) => m.recognition.role === role)!.volume)})`);
        else members.push(c);
      }
    }
    if (members.length) {
      const study = buildStudy(
        members.map((c) => ({ volume: c.volume, role: c.recognition.role!, recognised: c.recognition.role, reason: c.recognition.reason })),
        source,
      );
      notes.push(...(study.notes ?? []));
      studies.push(study);
    }
    for (const c of candidates) {
      if (members.includes(c)) continue;
      const why = apart.get(c);
      if (why) notes.push(`${seriesName(c.volume)} kept as a study of its own: ${why}`);
      studies.push(singleSeriesStudy(c, source));
    }
  }
  return { studies, notes };
}

/** Why `volume` cannot join a study on `reference`'s grid, or undefined when it can. */
function joinProblem(reference: Volume, volume: Volume): string | undefined {
  if (volume.components !== 1) return 'a colour image';
  if (sameGrid(reference.geometry, volume.geometry)) return undefined;
  const a = reference.meta.frameOfReferenceUid;
  const b = volume.meta.frameOfReferenceUid;
  if (!a || !b) return `it lies on another grid than ${seriesName(reference)} and the files give no frame of reference to relate the two`;
  if (a !== b) return `another frame of reference than ${seriesName(reference)} (its positions are not comparable without registration)`;
  const overlap = overlapFraction(reference.geometry, volume.geometry);
  if (overlap < MIN_OVERLAP) return `it covers only ${Math.round(overlap * 100)}% of ${seriesName(reference)}'s volume`;
  return undefined;
}

function singleSeriesStudy({ volume, recognition }: Candidate, source: string): Study {
  const role = recognition.role;
  const series: StudySeries[] | undefined = role
    ? [{ id: volume.meta.id, description: volume.meta.description, ...seriesNumber(volume), role, recognised: role, reason: recognition.reason, volume, resampled: false }]
    : undefined;
  return {
    name: seriesName(volume),
    kind: 'dicom',
    source,
    sequences: { [role ?? 'image']: volume },
    metadata: dicomMetadata(volume),
    ...(series ? { series } : {}),
  };
}

function seriesNumber(volume: Volume): { seriesNumber?: number } {
  const n = num(dicomTags(volume).SeriesNumber);
  return n === undefined ? {} : { seriesNumber: n };
}

/**
 * The study of series with their roles: the FLAIR's grid (else the first role's) is the study's,
 * other series are resampled onto it. Roles must be distinct.
 */
function buildStudy(
  members: { volume: Volume; role: BratsSequence; recognised: BratsSequence | null; reason: string }[],
  source: string,
  /** series already resampled (original → on its study's grid), reused when that grid is still the study's */
  resampledBefore = new Map<Volume, Volume>(),
): Study {
  const ordered = [...members].sort((a, b) => SEQUENCE_ORDER.indexOf(a.role) - SEQUENCE_ORDER.indexOf(b.role));
  const reference = ordered.find((m) => m.role === 'flair') ?? ordered[0]!;
  const sequences: Record<string, Volume> = {};
  const series: StudySeries[] = [];
  const notes: string[] = [];
  for (const m of ordered) {
    const resampled = !sameGrid(reference.volume.geometry, m.volume.geometry);
    const before = resampledBefore.get(m.volume);
    const reuse = before && sameGrid(before.geometry, reference.volume.geometry);
    sequences[m.role] = !resampled ? m.volume : reuse ? before : resampleToGrid(m.volume, reference.volume.geometry, 'trilinear');
    if (resampled) {
      const g = m.volume.geometry;
      notes.push(
        `${seriesName(m.volume)} (${m.role}) resampled onto the grid of ${seriesName(reference.volume)} (${reference.role}) through world coordinates, trilinear: ` +
          `${g.dims.join('×')} at ${g.spacing.map((s) => +s.toFixed(3)).join('×')} mm → ${reference.volume.dims.join('×')} at ${reference.volume.geometry.spacing.map((s) => +s.toFixed(3)).join('×')} mm`,
      );
    }
    series.push({ id: m.volume.meta.id, description: m.volume.meta.description, ...seriesNumber(m.volume), role: m.role, recognised: m.recognised, reason: m.reason, volume: m.volume, resampled });
  }
  const metadata = dicomMetadata(reference.volume);
  const name = ordered.length > 1 ? metadata.studyDescription || metadata.patientId || metadata.patientName || seriesName(reference.volume) : seriesName(reference.volume);
  return { name, kind: 'dicom', source, sequences, metadata, series, ...(notes.length ? { notes } : {}) };
}

/**
 * The same study with other roles for its series (`roles`: series id → role). A role given to a
 * series is taken from the series that had it, which gets the giver's old role (a swap), so the
 * study keeps one series per role. The grid follows the FLAIR.
 */
export function reassignRoles(study: Study, roles: Record<string, BratsSequence>): Study {
  const series = study.series;
  if (!series?.length) throw new FileError(study.source, `${study.name} has no DICOM series whose sequences could be reassigned`);
  const current = new Map(series.map((s) => [s.id, s.role]));
  for (const [id, role] of Object.entries(roles)) {
    const old = current.get(id);
    if (old === undefined) throw new FileError(study.source, `${study.name} has no series ${id}`);
    if (!SEQUENCE_ORDER.includes(role)) throw new FileError(study.source, `"${role}" is not a sequence (use ${SEQUENCE_ORDER.join(', ')})`);
    if (old === role) continue;
    for (const [otherId, otherRole] of current) if (otherId !== id && otherRole === role) current.set(otherId, old);
    current.set(id, role);
  }
  const resampledBefore = new Map(series.filter((s) => s.resampled && study.sequences[s.role]).map((s) => [s.volume, study.sequences[s.role]!]));
  const rebuilt = buildStudy(
    series.map((s) => ({ volume: s.volume, role: current.get(s.id)!, recognised: s.recognised, reason: s.reason })),
    study.source,
    resampledBefore,
  );
  // a one-series study is named after its series whatever its role; a bigger one keeps its name
  return { ...rebuilt, name: study.name, ...(study.seg ? { seg: study.seg } : {}) };
}
