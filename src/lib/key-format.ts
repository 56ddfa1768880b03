import { customAlphabet } from 'nanoid';

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
 * Applies `case` to the charset and drops duplicate characters (docs/api.md, "License key format"). Returns undefined when
 * fewer than two distinct characters remain.
 */
export function resolveKeyFormat(input?: KeyFormatInput): KeyFormat | undefined {
  return input === undefined ? DEFAULT_FORMAT : buildKeyFormat(input);
}

function buildKeyFormat(input: KeyFormatInput): KeyFormat | undefined {
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

const DEFAULT_FORMAT = buildKeyFormat({});

/** How many distinct keys a format can yield, capped to avoid huge numbers. */
export function keySpaceSize(format: KeyFormat): number {
  const length = format.sections * format.sectionLength;
  return [...format.charset].length ** length;
}

const sectionGenerators = new Map<string, () => string>();

/**
 * One nanoid customAlphabet generator per (charset, section length): nanoid draws bytes from
 * the CSPRNG and rejects those outside the alphabet's bit mask, so there is no modulo bias.
 * Drawing per section (at most 32 chars) keeps each draw far below the 64 KiB that
 * crypto.getRandomValues fills at once; a whole 10x32 key in one draw exceeds it and leaves
 * nanoid's shared pool broken for the process.
 */
function sectionGenerator(charset: string, length: number): () => string {
  const cacheKey = `${length}:${charset}`;
  let generate = sectionGenerators.get(cacheKey);
  if (!generate) {
    generate = customAlphabet(charset, length);
    // Formats are client-chosen: bound the cache.
    if (sectionGenerators.size >= 1000) sectionGenerators.clear();
    sectionGenerators.set(cacheKey, generate);
  }
  return generate;
}

export function generateLicenseKey(format: KeyFormat): string {
  const generate = sectionGenerator(format.charset, format.sectionLength);
  const sections: string[] = [];
  for (let i = 0; i < format.sections; i++) sections.push(generate());
  return format.prefix + sections.join(format.separator) + format.suffix;
}
