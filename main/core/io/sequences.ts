/**
 * Which MRI sequence a DICOM series is (T1, T1 post-contrast, T2, FLAIR), recognised the way a
 * radiologist reads a series list: from the description the scanner or technologist wrote
 * ("AX T1 POST GAD", "T2 FLAIR", "T1 MPRAGE", "T2W TSE" …), then the protocol and sequence names,
 * the contrast agent tag (0018,0010) and, when no name says anything, the timing (TR, TE, TI).
 * Series that are something else (diffusion, SWI, localizers, T2*) are recognised as none of the four.
 * The names are the BraTS ones (study.ts), so a recognised DICOM study looks like a BraTS case.
 */
import { BRATS_SEQUENCES, type BratsSequence } from './study.ts';

export interface SeriesTags {
  modality?: string;
  seriesDescription?: string;
  protocolName?: string;
  sequenceName?: string;
  /** ContrastBolusAgent (0018,0010) */
  contrastAgent?: string;
  /** milliseconds */
  repetitionTime?: number;
  echoTime?: number;
  inversionTime?: number;
}

export interface Recognition {
  role: BratsSequence | null;
  /** what the decision rests on, for the mapping shown to the user */
  reason: string;
}

/** Series that carry one of the words are not structural T1/T2/FLAIR images, whatever else they say. */
const NOT_STRUCTURAL = /\b(dwi|diffusion|dti|adc|trace|ep2d diff|b ?\d{3,4}|swi|swan|susc\w*|perf\w*|dsc|dce|asl|pwi|loc\w*|scout|survey|3 ?plane|tripilot|calibration|mip|mra|tof|angio\w*|spect\w*|mrs|hemo|fmri|bold|ssfse? scout)\b|\bt2 ?(\*|star\b)|\bt2star\b/;
const FLAIR = /\b(flair|dark ?fluid|tirm|t2 ?fl|t2f)\b/;
const T1 = /\b(t1(w|wi|n)?|t1 ?weighted|mprage|mp ?rage|spgr|fspgr|bravo|vibe|lava|fl3d|tfl3d|tfe|thrive|ir ?fspgr|3d ?t1)\b/;
/** T1 post-contrast spelt as one token: T1c, T1ce, T1gd, T1+C … */
const T1_POST = /\b(t1 ?(c|ce|gd|gad|post|pc)|t1w? ?\+ ?(c|gd)?|t1w?\s*post\w*)(?![a-z0-9])/;
const T2 = /\b(t2(w|wi)?|t2 ?weighted|t2 ?(tse|fse|frfse|space|cube|blade|propeller))\b/;
const POST = /(\bpost\w*|\bgad\w*|\bgd\b|\bgd ?dtpa|\bcontrast|\bkontrast|\benhanced?\b|\bce\b|\+ ?(c|gd)\b|\bc ?\+|\bwith\b|\bdotarem|\bgadovist|\bmagnevist|\bmultihance|\bprohance|\bclariscan)/;
const PRE = /(\bpre\w*|\bnative?\b|\bnon ?contrast|\bwithout\b|\bno contrast|\bplain\b)/;

/** Lower case, separators (_ - / . , ( ) …) as spaces, runs of spaces as one. */
export function normaliseDescription(text: string): string {
  return text
    .toLowerCase()
    .replace(/[_\-/.,:;()[\]{}'"|]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Recognition from one name (description, protocol or sequence name); null role when it says nothing. */
export function recogniseName(name: string, contrastAgent?: string): BratsSequence | null | 'other' {
  const text = normaliseDescription(name);
  if (!text) return null;
  if (NOT_STRUCTURAL.test(text)) return 'other';
  const t1 = T1.test(text);
  const hasContrast = hasAgent(contrastAgent);
  const post = T1_POST.test(text) || (POST.test(text) && !PRE.test(text));
  if (FLAIR.test(text)) {
    // "T1 FLAIR" (GE's T1-weighted inversion recovery) is a T1, not a FLAIR
    if (t1 && !/\bt2\b/.test(text)) return post || hasContrast ? 't1ce' : 't1';
    return 'flair';
  }
  if (T1_POST.test(text)) return PRE.test(text) ? 't1' : 't1ce';
  if (t1) return post || (hasContrast && !PRE.test(text)) ? 't1ce' : 't1';
  if (T2.test(text)) return 't2';
  // "AX POST", "SAG +C": a post-contrast series named without its weighting is a T1
  if (post && !PRE.test(text)) return 't1ce';
  return null;
}

function hasAgent(agent: string | undefined): boolean {
  if (!agent) return false;
  const text = normaliseDescription(agent);
  return text !== '' && !/^(none|no|n a|na|0|-)$/.test(text);
}

/** The sequence a series is, and why; `null` when it is none of the four or cannot be told. */
export function recogniseSequence(tags: SeriesTags): Recognition {
  if (tags.modality && tags.modality !== 'MR') return { role: null, reason: `modality ${tags.modality}, not MR` };
  const names: [string, string | undefined][] = [
    ['series description', tags.seriesDescription],
    ['protocol name', tags.protocolName],
    ['sequence name', tags.sequenceName],
  ];
  for (const [what, name] of names) {
    if (!name) continue;
    const role = recogniseName(name, tags.contrastAgent);
    if (role === 'other') return { role: null, reason: `${what} "${name}" is not a T1, T2 or FLAIR series` };
    if (role) {
      const agent = hasAgent(tags.contrastAgent) && role === 't1ce' && !T1_POST.test(normaliseDescription(name)) && !POST.test(normaliseDescription(name));
      return { role, reason: agent ? `${what} "${name}" and contrast agent "${tags.contrastAgent}"` : `${what} "${name}"` };
    }
  }
  const { repetitionTime: tr, echoTime: te, inversionTime: ti } = tags;
  const timing = [tr !== undefined ? `TR ${tr}` : '', te !== undefined ? `TE ${te}` : '', ti !== undefined ? `TI ${ti}` : ''].filter(Boolean).join(', ');
  if (tr !== undefined && te !== undefined) {
    let role: BratsSequence | null = null;
    if (ti !== undefined && ti >= 1200 && tr >= 4000) role = 'flair';
    else if (tr >= 2000 && te >= 60 && (ti === undefined || ti === 0)) role = 't2';
    else if ((tr <= 1000 && te <= 30) || (ti !== undefined && ti >= 600 && ti < 1200 && te < 10)) role = 't1';
    if (role === 't1' && hasAgent(tags.contrastAgent)) role = 't1ce';
    if (role) return { role, reason: `timing (${timing} ms)${role === 't1ce' ? ` and contrast agent "${tags.contrastAgent}"` : ''}` };
  }
  const said = names.filter(([, n]) => n).map(([what, n]) => `${what} "${n}"`);
  return { role: null, reason: said.length ? `${said.join(', ')} name no T1, T2 or FLAIR` : 'no description, protocol or timing to go by' };
}

/** The order sequences are listed and fed in (BraTS's). */
export const SEQUENCE_ORDER: readonly BratsSequence[] = BRATS_SEQUENCES;
