/**
 * Finding 10 of issue 14: `updateSettings {"__proto__":…, "toString":"x"}` was accepted and
 * persisted, because `key in optional` is true for inherited names. Requests arrive as JSON, so
 * they are built with JSON.parse here exactly as the server and the IPC channel receive them.
 */
import { describe, expect, it } from 'vitest';
import { validateRequest } from '../../../main/core/api.ts';
import { s as v } from '../../../main/core/schema.ts';

const parsed = (text: string): unknown => JSON.parse(text);

describe('request validation on own properties only', () => {
  it.each([
    ['{"__proto__": {"polluted": true}}', /__proto__ is not allowed/],
    ['{"constructor": {"prototype": {"polluted": true}}}', /constructor is not allowed/],
    ['{"prototype": 1}', /prototype is not allowed/],
    ['{"toString": "x"}', /toString is not expected/],
    ['{"hasOwnProperty": "x"}', /hasOwnProperty is not expected/],
    ['{"valueOf": 1}', /valueOf is not expected/],
  ])('updateSettings %s is refused', (text, message) => {
    expect(validateRequest('updateSettings', parsed(text))).toMatch(message);
  });

  it('a valid settings update still passes', () => {
    expect(validateRequest('updateSettings', {})).toBeNull();
  });

  it('a required key is not satisfied by an inherited one', () => {
    const check = v.object({ toString: v.string() });
    expect(check(parsed('{}'), 'request')).toBe('request.toString is missing');
    expect(check(parsed('{"toString": "x"}'), 'request')).toBeNull();
  });

  it('records (any key) refuse the prototype names too', () => {
    const check = v.record(v.number());
    expect(check(parsed('{"a": 1}'), 'r')).toBeNull();
    expect(check(parsed('{"__proto__": 1}'), 'r')).toBe('r.__proto__ is not allowed');
    expect(check(parsed('{"constructor": 1}'), 'r')).toBe('r.constructor is not allowed');
  });

  it('a union tag naming an inherited property is not a variant', () => {
    const check = v.union('kind', { a: v.object({ kind: v.literal(['a']) }) });
    expect(check(parsed('{"kind": "a"}'), 'x')).toBeNull();
    expect(check(parsed('{"kind": "constructor"}'), 'x')).toBe('x.kind must be one of a');
    expect(check(parsed('{"kind": "toString"}'), 'x')).toBe('x.kind must be one of a');
  });

  it('no method name resolves to an inherited property', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expect(validateRequest(name, {})).toMatch(/unknown|not/);
  });
});

describe('binary frames', () => {
  it('an array reference naming an inherited constructor is refused', async () => {
    const { decodeFrame } = await import('../../../main/core/rpc/frame.ts');
    const header = new TextEncoder().encode(JSON.stringify({ data: { $ta: 'constructor', o: 0, n: 0 } }));
    const frame = new Uint8Array(8 + Math.ceil(header.length / 8) * 8);
    new DataView(frame.buffer).setUint32(0, header.length, true);
    frame.set(header, 4);
    expect(() => decodeFrame(frame)).toThrow(/malformed array reference/);
  });
});
