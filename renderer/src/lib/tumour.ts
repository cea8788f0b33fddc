/** What the Tumour panel and the axial view share: the RANO lines of a description and their colours. */
import type { TumourView } from '../../../main/core/api.ts';
import type { MeasurementLine } from './viewer.ts';

/** RANO's long diameter and the perpendicular one, in colours apart from the label colours. */
export const RANO_LINE_COLOURS = { long: '#00e5ff', perp: '#ff4fd8' } as const;

export function ranoMeasurementLines(tumour: TumourView): MeasurementLine[] {
  return tumour.ranoLines.flatMap((l) =>
    l
      ? [
          { from: l.long[0], to: l.long[1], colour: RANO_LINE_COLOURS.long },
          { from: l.perp[0], to: l.perp[1], colour: RANO_LINE_COLOURS.perp },
        ]
      : [],
  );
}
