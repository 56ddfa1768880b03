import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CHARSET,
  generateLicenseKey,
  type KeyFormat,
  keySpaceSize,
  resolveKeyFormat,
} from '../../src/lib/key-format.js';

const DEFAULT_FORMAT: KeyFormat = {
  sections: 4,
  sectionLength: 5,
  separator: '-',
  charset: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  prefix: '',
  suffix: '',
};

const format = (fields: Partial<KeyFormat>): KeyFormat => ({ ...DEFAULT_FORMAT, ...fields });
const charsetOf = (input: Parameters<typeof resolveKeyFormat>[0]) => resolveKeyFormat(input)?.charset;

describe('resolveKeyFormat', () => {
  it('without a format: 4 sections of 5 upper-case letters and digits, joined by "-"', () => {
    expect(DEFAULT_CHARSET).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');
    expect(resolveKeyFormat()).toEqual(DEFAULT_FORMAT);
    expect(resolveKeyFormat(undefined)).toEqual(DEFAULT_FORMAT);
  });

  it('an empty format means the defaults too', () => {
    expect(resolveKeyFormat({})).toEqual(DEFAULT_FORMAT);
  });

  it('takes every given field; empty strings are kept, not replaced by defaults', () => {
    expect(
      resolveKeyFormat({
        sections: 3,
        sectionLength: 4,
        separator: '.',
        charset: 'ABC123',
        prefix: 'PRO',
        suffix: '-EU',
      }),
    ).toEqual({ sections: 3, sectionLength: 4, separator: '.', charset: 'ABC123', prefix: 'PRO', suffix: '-EU' });
    expect(resolveKeyFormat({ separator: '', prefix: '', suffix: '' })).toEqual(format({ separator: '' }));
  });

  it('case "upper" (the default) upper-cases the charset; prefix and suffix stay as given', () => {
    expect(resolveKeyFormat({ charset: 'abc', prefix: 'p-', suffix: '-s' })).toEqual(
      format({ charset: 'ABC', prefix: 'p-', suffix: '-s' }),
    );
    expect(charsetOf({ charset: 'xyz', case: 'upper' })).toBe('XYZ');
  });

  it('case "lower" lower-cases the charset; digits and symbols are unchanged', () => {
    expect(charsetOf({ case: 'lower' })).toBe('abcdefghijklmnopqrstuvwxyz0123456789');
    expect(charsetOf({ charset: 'AB#9', case: 'lower' })).toBe('ab#9');
  });

  it('case "mixed" gives each letter in both cases, upper first, in charset order', () => {
    expect(charsetOf({ charset: 'ab', case: 'mixed' })).toBe('AaBb');
    expect(charsetOf({ charset: 'Ba', case: 'mixed' })).toBe('BbAa');
    expect(charsetOf({ charset: 'a1', case: 'mixed' })).toBe('Aa1');
  });

  it('drops repeated characters, keeping the first occurrence', () => {
    expect(charsetOf({ charset: 'ABCABCA' })).toBe('ABC');
    expect(charsetOf({ charset: 'abAB' })).toBe('AB');
    expect(charsetOf({ charset: 'CaBAc' })).toBe('CAB');
    expect(charsetOf({ charset: 'abAB', case: 'mixed' })).toBe('AaBb');
  });

  it('a character that changes into several keeps only single characters (ß → SS → S)', () => {
    expect(charsetOf({ charset: 'ßx' })).toBe('SX');
    expect(charsetOf({ charset: 'ßs', case: 'lower' })).toBe('ßs');
    expect(charsetOf({ charset: 'ß', case: 'mixed' })).toBe('Sß');
  });

  it.each([
    [{ charset: 'aA' }],
    [{ charset: 'Aa', case: 'lower' as const }],
    [{ charset: 'aaaa', case: 'lower' as const }],
    [{ charset: '11' }],
    [{ charset: 'A' }],
    [{ charset: '' }],
    [{ charset: 'ß' }],
  ])('fewer than two distinct characters after case and dedupe: %j is refused', (input) => {
    expect(resolveKeyFormat(input)).toBeUndefined();
  });

  it('two characters are enough, in mixed case too', () => {
    expect(charsetOf({ charset: 'AB' })).toBe('AB');
    expect(charsetOf({ charset: 'aA', case: 'mixed' })).toBe('Aa');
    expect(charsetOf({ charset: 'a', case: 'mixed' })).toBe('Aa');
  });

  it('does not change its input', () => {
    const input = { charset: 'abc', case: 'upper' as const, sections: 2 };
    resolveKeyFormat(input);
    expect(input).toEqual({ charset: 'abc', case: 'upper', sections: 2 });
  });
});

describe('keySpaceSize', () => {
  it('is the number of characters to the power of the key length (sections x section length)', () => {
    expect(keySpaceSize(format({ charset: 'AB', sections: 1, sectionLength: 1 }))).toBe(2);
    expect(keySpaceSize(format({ charset: 'ABC', sections: 1, sectionLength: 4 }))).toBe(81);
    expect(keySpaceSize(format({ charset: 'ABCD', sections: 2, sectionLength: 2 }))).toBe(256);
    expect(keySpaceSize(format({ charset: 'AB', sections: 3, sectionLength: 3 }))).toBe(512);
    expect(keySpaceSize(DEFAULT_FORMAT) / 36 ** 20).toBeCloseTo(1, 12);
  });

  it('ignores separator, prefix and suffix: they add no choices', () => {
    const plain = format({ charset: 'ABC', sections: 2, sectionLength: 2 });
    expect(keySpaceSize({ ...plain, separator: '::', prefix: 'PRO-', suffix: '-EU' })).toBe(keySpaceSize(plain));
  });

  it('counts the characters of the charset as resolved (after case and dedupe)', () => {
    expect(keySpaceSize(resolveKeyFormat({ charset: 'aA', case: 'mixed', sections: 1, sectionLength: 3 })!)).toBe(8);
    expect(keySpaceSize(resolveKeyFormat({ charset: 'AAB', sections: 1, sectionLength: 3 })!)).toBe(8);
  });

  it('the largest format (10 x 32 of 100 characters) is a number no batch (at most 1000 keys) exceeds', () => {
    const charset = Array.from({ length: 100 }, (_, i) => String.fromCharCode(33 + i)).join('');
    const size = keySpaceSize(format({ charset, sections: 10, sectionLength: 32 }));
    expect(Number.isNaN(size)).toBe(false);
    expect(size).toBeGreaterThanOrEqual(1000);
  });
});

describe('generateLicenseKey', () => {
  it('the longest format (10 x 32) works as the first key drawn, and so do the keys after it', () => {
    const longest = generateLicenseKey(format({ sections: 10, sectionLength: 32 }));
    expect(longest).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
    for (let i = 0; i < 50; i++) expect(generateLicenseKey(DEFAULT_FORMAT)).toMatch(/^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/);
    expect(generateLicenseKey(format({ sections: 10, sectionLength: 32 }))).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
  });

  it('the default format: 4 sections of 5 characters of the default charset', () => {
    expect(generateLicenseKey(DEFAULT_FORMAT)).toMatch(/^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/);
  });

  it('puts the prefix and suffix around the sections, with no separator of their own', () => {
    const key = generateLicenseKey(
      format({ sections: 3, sectionLength: 4, separator: '.', charset: 'ABC123', prefix: 'PRO', suffix: '-EU' }),
    );
    expect(key).toMatch(/^PRO[ABC123]{4}\.[ABC123]{4}\.[ABC123]{4}-EU$/);
  });

  it('joins sections with any separator: none, or several characters', () => {
    expect(generateLicenseKey(format({ separator: '' }))).toMatch(/^[A-Z0-9]{20}$/);
    expect(generateLicenseKey(format({ separator: '::-', sections: 2 }))).toMatch(/^[A-Z0-9]{5}::-[A-Z0-9]{5}$/);
    expect(generateLicenseKey(format({ sections: 1, sectionLength: 1 }))).toMatch(/^[A-Z0-9]$/);
  });

  it('draws only characters of the charset, and all of them', () => {
    const drawn = new Set<string>();
    for (let i = 0; i < 100; i++) {
      for (const c of generateLicenseKey(format({ charset: 'xY7', separator: '' }))) drawn.add(c);
    }
    expect([...drawn].sort()).toEqual(['7', 'Y', 'x']);
  });

  it('draws over the whole default charset', () => {
    const drawn = new Set<string>();
    for (let i = 0; i < 200; i++) for (const c of generateLicenseKey(format({ separator: '' }))) drawn.add(c);
    expect([...drawn].sort().join('')).toBe('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ');
  });

  it('draws each section on its own', () => {
    for (let i = 0; i < 20; i++) {
      const sections = generateLicenseKey(DEFAULT_FORMAT).split('-');
      expect(sections).toHaveLength(4);
      expect(new Set(sections).size).toBeGreaterThan(1);
    }
  });

  it('keys are random: 1000 default keys are all distinct', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateLicenseKey(DEFAULT_FORMAT)));
    expect(keys.size).toBe(1000);
  });

  it('draws each character about equally often', () => {
    // 3 characters: a byte taken modulo 3 would favour the first one by 1 in 256; this checks only
    // for gross skew (a fixed or heavily biased draw): each share is within 3 % of a third.
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      for (const c of generateLicenseKey(format({ charset: 'ABC', sections: 1, sectionLength: 100 }))) {
        counts.set(c, (counts.get(c) ?? 0) + 1);
      }
    }
    for (const c of ['A', 'B', 'C']) expect(Math.abs(counts.get(c)! / 30_000 - 1 / 3)).toBeLessThan(0.03);
  });

  it('a section length or charset used before does not leak into another format', () => {
    // Generators are reused per (charset, section length): neither may stand in for the other.
    expect(generateLicenseKey(format({ charset: 'AB', sections: 1, sectionLength: 3 }))).toMatch(/^[AB]{3}$/);
    expect(generateLicenseKey(format({ charset: 'AB', sections: 1, sectionLength: 7 }))).toMatch(/^[AB]{7}$/);
    expect(generateLicenseKey(format({ charset: 'XY', sections: 1, sectionLength: 7 }))).toMatch(/^[XY]{7}$/);
    expect(generateLicenseKey(format({ charset: 'AB', sections: 1, sectionLength: 3 }))).toMatch(/^[AB]{3}$/);
  });

  it('keeps working after more than 1000 distinct formats', () => {
    for (let length = 1; length <= 32; length++) {
      for (let i = 0; i < 40; i++) {
        const charset = `AB${String.fromCharCode(0x100 + i)}`;
        const key = generateLicenseKey(format({ charset, sections: 1, sectionLength: length }));
        expect(key).toHaveLength(length);
        expect([...key].every((c) => charset.includes(c))).toBe(true);
      }
    }
    expect(generateLicenseKey(DEFAULT_FORMAT)).toMatch(/^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/);
  });

  it('uses mixed-case charsets as resolved', () => {
    const resolved = resolveKeyFormat({ charset: 'ab', case: 'mixed', sections: 1, sectionLength: 32 })!;
    const drawn = new Set<string>();
    for (let i = 0; i < 20; i++) for (const c of generateLicenseKey(resolved)) drawn.add(c);
    expect([...drawn].sort()).toEqual(['A', 'B', 'a', 'b']);
  });
});
