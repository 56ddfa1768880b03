const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})$/;

/** Date.UTC, without its mapping of years 0–99 onto 1900–1999. */
function utc(y: number, mo: number, d = 1, h = 0, mi = 0, s = 0, ms = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(y, mo, d);
  date.setUTCHours(h, mi, s, ms);
  return date.getTime();
}

// The range every layer round-trips: PostgreSQL has no year 0, JavaScript's parser of the
// driver's text output reads years below 100 as 19xx/20xx, and the output format has a
// four-digit year. Instants outside it are rejected rather than stored wrong or answered 500.
const EARLIEST = utc(1000, 0);
const LATEST = utc(10000, 0) - 1;

const inRange = (time: number): Date | undefined => (time >= EARLIEST && time <= LATEST ? new Date(time) : undefined);

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}

/**
 * Parses the contract's date input (docs/api.md, "Conventions"): an ISO 8601 date-time with a zone, or a bare date
 * meaning midnight UTC. Impossible calendar dates and zone-less date-times are rejected.
 * Returns undefined when the value is not acceptable or falls outside the years 1000–9999 (UTC);
 * precision is truncated to milliseconds.
 */
export function parseIsoDate(value: string): Date | undefined {
  const dateOnly = DATE_ONLY.exec(value);
  if (dateOnly) {
    const [, y, m, d] = dateOnly.map(Number) as [number, number, number, number];
    if (m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return undefined;
    return inRange(utc(y, m - 1, d));
  }
  const match = DATE_TIME.exec(value);
  if (!match) return undefined;
  const [, ys, ms, ds, hs, mins, ss, frac, zone] = match;
  const y = Number(ys);
  const m = Number(ms);
  const d = Number(ds);
  const h = Number(hs);
  const min = Number(mins);
  const s = ss === undefined ? 0 : Number(ss);
  if (m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return undefined;
  if (h > 23 || min > 59 || s > 59) return undefined;
  const millis = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  if (zone && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  return inRange(utc(y, m - 1, d, h, min, s, millis) - offsetMinutes * 60_000);
}

/** Same day-of-month and time next month, clamped to that month's last day. */
export function addOneCalendarMonth(from: Date): Date {
  const year = from.getUTCFullYear();
  const month = from.getUTCMonth() + 1;
  const targetYear = month === 12 ? year + 1 : year;
  const targetMonth = month % 12;
  const day = Math.min(from.getUTCDate(), daysInMonth(targetYear, targetMonth + 1));
  return new Date(
    utc(
      targetYear,
      targetMonth,
      day,
      from.getUTCHours(),
      from.getUTCMinutes(),
      from.getUTCSeconds(),
      from.getUTCMilliseconds(),
    ),
  );
}

export const toIso = (date: Date | null): string | null => (date ? date.toISOString() : null);
