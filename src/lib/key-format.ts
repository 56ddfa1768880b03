import { randomInt } from 'node:crypto';

export interface KeyFormatInput {
  sections?: number;
  sectionLength?: number;
  separator?: string;
  charset?: string;
  prefix?: string;
  suffix?: string;
  case?: 'upper' | 'lower' | 'mixed';
}

export interface KeyFormat {
  sections: number;
  sectionLength: number;
  separator: string;
  charset: string;
  prefix: string;
  suffix: string;
}

export const DEFAULT_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * Applies `case` to the charset and drops duplicate characters (§1.8). Returns undefined when
 * fewer than two distinct characters remain.
 */
export function resolveKeyFormat(input: KeyFormatInput = {}): KeyFormat | undefined {
  const raw = input.charset ?? DEFAULT_CHARSET;
  const mode = input.case ?? 'upper';
  let cased: string[];
  if (mode === 'upper') cased = [...raw].map((c) => c.toUpperCase());
  else if (mode === 'lower') cased = [...raw].map((c) => c.toLowerCase());
  else cased = [...raw].flatMap((c) => [c.toUpperCase(), c.toLowerCase()]);
  // Case-mapping can turn one char into several (e.g. 'ß' -> 'SS'): keep single chars only.
  const charset = [...new Set(cased.flatMap((c) => [...c]))].join('');
  if ([...charset].length < 2) return undefined;
  return {
    sections: input.sections ?? 4,
    sectionLength: input.sectionLength ?? 5,
    separator: input.separator ?? '-',
    charset,
    prefix: input.prefix ?? '',
    suffix: input.suffix ?? '',
  };
}

/** How many distinct keys a format can yield, capped to avoid huge numbers. */
export function keySpaceSize(format: KeyFormat): number {
  const length = format.sections * format.sectionLength;
  return Math.pow([...format.charset].length, length);
}

/**
 * Each char comes from crypto.randomInt: rejection sampling (no modulo bias) for any charset
 * size and key length. Not nanoid's customAlphabet: its shared pool is capped at 64 KiB, and a
 * long first key left it broken (every later draw looped forever) for the whole process.
 */
export function generateLicenseKey(format: KeyFormat): string {
  const chars = [...format.charset];
  const sections: string[] = [];
  for (let i = 0; i < format.sections; i++) {
    let section = '';
    for (let j = 0; j < format.sectionLength; j++) section += chars[randomInt(chars.length)];
    sections.push(section);
  }
  return format.prefix + sections.join(format.separator) + format.suffix;
}
