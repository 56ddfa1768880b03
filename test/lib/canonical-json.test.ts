import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/lib/canonical-json.js';

describe('canonicalJson', () => {
  it('sorts object keys at every depth and writes no whitespace', () => {
    const value = { b: 1, a: { d: [3, { y: 1, x: 2 }], c: null } };
    expect(canonicalJson(value)).toBe('{"a":{"c":null,"d":[3,{"x":2,"y":1}]},"b":1}');
  });

  it('is JSON.stringify for values whose keys are already in order', () => {
    const value = {
      a: 'quote " backslash \\ newline \n astral 😀 lone \ud800',
      b: [1.5, -0, 1e21, 0.1, true, false, null, '', [], {}],
      c: { nested: [[[]]] },
    };
    expect(canonicalJson(value)).toBe(JSON.stringify(value));
    for (const scalar of ['x', 0, 1e-7, true, null]) expect(canonicalJson(scalar)).toBe(JSON.stringify(scalar));
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
  });

  it('drops undefined members and writes undefined array items and holes as null, like JSON.stringify', () => {
    const withHole = new Array<number>(3);
    withHole[0] = 1;
    withHole[2] = 3;
    expect(canonicalJson({ b: undefined, a: [undefined, 2] })).toBe('{"a":[null,2]}');
    expect(canonicalJson(withHole)).toBe(JSON.stringify(withHole));
  });

  it('orders keys by UTF-16 code units', () => {
    const value = { z: 1, Z: 2, é: 3, '😀': 4, '\uffff': 5, '': 6, a: 7 };
    expect(Object.keys(JSON.parse(canonicalJson(value)))).toEqual(['', 'Z', 'a', 'z', 'é', '😀', '\uffff']);
  });

  it('equal for values that differ only in key order', () => {
    const parsed = JSON.parse('{"format":{"prefix":"A","sections":2},"usesPerKey":"3"}');
    expect(canonicalJson(parsed)).toBe(canonicalJson({ usesPerKey: '3', format: { sections: 2, prefix: 'A' } }));
  });

  it('handles 100k levels of nesting without overflowing the stack', () => {
    const levels = 100_000;
    const object = JSON.parse(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
    expect(canonicalJson(object)).toBe(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
    const array = JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);
    expect(canonicalJson(array)).toBe(`${'['.repeat(levels)}${']'.repeat(levels)}`);
  });
});
