import { describe, expect, it } from 'vitest';
import { recogniseSequence } from '../../../main/core/io/sequences.ts';

/** Series descriptions as scanners and technologists write them, with the sequence they are. */
const TABLE: [string, 't1' | 't1ce' | 't2' | 'flair' | null][] = [
  ['AX T1 POST GAD', 't1ce'],
  ['T1 MPRAGE', 't1'],
  ['T1+C', 't1ce'],
  ['T1c', 't1ce'],
  ['t1ce', 't1ce'],
  ['T1 FS POST', 't1ce'],
  ['T2 FLAIR', 'flair'],
  ['FLAIR', 'flair'],
  ['T2W TSE', 't2'],
  ['Ax T2', 't2'],
  ['T1 SE', 't1'],
  ['AX T1 PRE', 't1'],
  ['Sag T1 pre-contrast', 't1'],
  ['t1_mprage_sag_p2_iso', 't1'],
  ['t1_mprage_sag_p2_iso_POST', 't1ce'],
  ['MPRAGE_GD', 't1ce'],
  ['Ax T1 SE +C', 't1ce'],
  ['AX T1 C+', 't1ce'],
  ['3D T1 BRAVO POST', 't1ce'],
  ['AX FSPGR 3D', 't1'],
  ['T1W_3D_TFE_Gd', 't1ce'],
  ['T1 WITH CONTRAST', 't1ce'],
  ['T1 WITHOUT CONTRAST', 't1'],
  ['AX T2 FRFSE', 't2'],
  ['t2_tse_tra', 't2'],
  ['T2 SPACE', 't2'],
  ['AX T2 FLAIR FS', 'flair'],
  ['t2_tirm_tra_dark-fluid', 'flair'],
  ['Ax FLAIR post', 'flair'],
  ['3D FLAIR CUBE', 'flair'],
  ['AX T1 FLAIR', 't1'],
  ['Sag T1 FLAIR POST', 't1ce'],
  ['AX POST', 't1ce'],
  ['AX DWI', null],
  ['ep2d_diff_3scan_trace', null],
  ['ADC', null],
  ['Ax T2* GRE', null],
  ['AX SWI', null],
  ['3 Plane Localizer', null],
  ['localizer', null],
  ['PERFUSION', null],
  ['MRA TOF', null],
  ['', null],
  ['SERIES 7', null],
];

describe('sequence recognition from series descriptions', () => {
  for (const [description, role] of TABLE) {
    it(`"${description}" → ${role ?? 'none'}`, () => {
      const got = recogniseSequence({ modality: 'MR', seriesDescription: description });
      expect(got.role).toBe(role);
      expect(got.reason.length).toBeGreaterThan(0);
    });
  }

  it('says where the decision came from', () => {
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'Ax T2' }).reason).toBe('series description "Ax T2"');
  });

  it('refuses modalities other than MR', () => {
    expect(recogniseSequence({ modality: 'CT', seriesDescription: 'T1' })).toEqual({ role: null, reason: 'modality CT, not MR' });
  });
});

describe('sequence recognition from other tags', () => {
  it('a T1 with a contrast agent in (0018,0010) is post-contrast, "none" is not an agent', () => {
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'AX T1 SE', contrastAgent: 'Gadovist 7ml' })).toMatchObject({ role: 't1ce', reason: expect.stringContaining('contrast agent "Gadovist 7ml"') });
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'AX T1 SE', contrastAgent: 'NONE' }).role).toBe('t1');
    // an explicit "pre" wins over a stale agent tag
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'AX T1 PRE', contrastAgent: 'Gd' }).role).toBe('t1');
  });

  it('falls back to the protocol and sequence names when the description says nothing', () => {
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'Series 3', protocolName: 'BRAIN_T2_TSE_AX' }).role).toBe('t2');
    expect(recogniseSequence({ modality: 'MR', sequenceName: '*tir2d1_16' }).role).toBe(null);
    expect(recogniseSequence({ modality: 'MR', sequenceName: 'T2 FLAIR' })).toEqual({ role: 'flair', reason: 'sequence name "T2 FLAIR"' });
  });

  it('a description naming something else is not overridden by the protocol', () => {
    expect(recogniseSequence({ modality: 'MR', seriesDescription: 'ADC map', protocolName: 'T2 FLAIR' }).role).toBe(null);
  });

  it('uses TR/TE/TI when no name tells', () => {
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 9000, echoTime: 120, inversionTime: 2500 }).role).toBe('flair');
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 4000, echoTime: 100 }).role).toBe('t2');
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 500, echoTime: 12 }).role).toBe('t1');
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 2300, echoTime: 3, inversionTime: 900 }).role).toBe('t1');
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 500, echoTime: 12, contrastAgent: 'Dotarem' }).role).toBe('t1ce');
    expect(recogniseSequence({ modality: 'MR', repetitionTime: 1500, echoTime: 45 })).toMatchObject({ role: null });
  });
});
