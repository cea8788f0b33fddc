/**
 * Text of the uncompressed page content streams of a PDF written by our writer: the strings of
 * the `(…) Tj` operators, per page in page order. Decodes WinAnsi and PDF string escapes.
 */
export function pdfPageTexts(pdf: Uint8Array): string[][] {
  const text = Buffer.from(pdf).toString('latin1');
  const objects = new Map<number, string>();
  for (const m of text.matchAll(/(\d+) 0 obj\n([\s\S]*?)\nendobj\n/g)) objects.set(Number(m[1]), m[2]!);
  const kids = /\/Kids \[([^\]]*)\]/.exec(objects.get(2)!)![1]!;
  const pageIds = [...kids.matchAll(/(\d+) 0 R/g)].map((m) => Number(m[1]));
  const winAnsi: Record<number, string> = { 0xd7: '×', 0xb7: '·', 0x95: '•', 0x85: '…', 0x96: '–', 0x97: '—', 0xb5: 'µ', 0xb0: '°', 0xb2: '²', 0xb3: '³' };
  return pageIds.map((id) => {
    const contentId = Number(/\/Contents (\d+) 0 R/.exec(objects.get(id)!)![1]);
    const body = objects.get(contentId)!;
    const stream = /stream\n([\s\S]*)\nendstream/.exec(body)![1]!;
    const strings: string[] = [];
    for (const m of stream.matchAll(/\(((?:\\.|[^\\)])*)\) Tj/g)) {
      const raw = m[1]!.replace(/\\(.)/g, '$1');
      strings.push([...raw].map((c) => winAnsi[c.charCodeAt(0)] ?? c).join(''));
    }
    return strings;
  });
}
