/** What the Tumour panel and the axial view share: the RANO lines of a description and their colours. */
import type { TumourView } from '../../../main/core/api.ts';
import { RANO_LINE_COLOURS } from '../../../main/core/conventions.ts';
import type { MeasurementLine } from './viewer.ts';

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
