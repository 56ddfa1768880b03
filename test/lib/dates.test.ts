import { describe, expect, it } from 'vitest';
import { addOneCalendarMonth, parseIsoDate, toIso } from '../../src/lib/dates.js';

/** The parsed instant as an ISO string, or undefined when parseIsoDate refuses the value. */
const parsed = (value: string) => parseIsoDate(value)?.toISOString();

/** A UTC instant of any year, without Date.UTC's mapping of years 0–99 onto 1900–1999. */
function utcDate(year: number, month: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date;
}

describe('parseIsoDate', () => {
  it('reads a bare date as midnight UTC', () => {
    expect(parsed('2030-12-31')).toBe('2030-12-31T00:00:00.000Z');
    expect(parsed('2028-02-29')).toBe('2028-02-29T00:00:00.000Z');
  });

  it.each([
    ['2030-12-31T23:59:59Z', '2030-12-31T23:59:59.000Z'],
    ['2030-06-30T12:00Z', '2030-06-30T12:00:00.000Z'],
    ['2030-06-30T23:59:59+02:00', '2030-06-30T21:59:59.000Z'],
    ['2030-06-30T23:59:59-05:30', '2030-07-01T05:29:59.000Z'],
    ['2030-01-01T00:30:00+01:00', '2029-12-31T23:30:00.000Z'],
    ['2030-06-30T12:00:00+00:00', '2030-06-30T12:00:00.000Z'],
    ['2030-06-30T12:00:00-00:00', '2030-06-30T12:00:00.000Z'],
    ['2030-06-30T12:00:00+23:59', '2030-06-29T12:01:00.000Z'],
  ])('applies the zone of %s: %s', (input, output) => {
    expect(parsed(input)).toBe(output);
  });

  it('keeps milliseconds and truncates finer fractions (never rounds)', () => {
    expect(parsed('2030-06-30T23:59:59.5Z')).toBe('2030-06-30T23:59:59.500Z');
    expect(parsed('2030-06-30T23:59:59.05Z')).toBe('2030-06-30T23:59:59.050Z');
    expect(parsed('2030-06-30T23:59:59.123Z')).toBe('2030-06-30T23:59:59.123Z');
    expect(parsed('2030-06-30T23:59:59.123456789Z')).toBe('2030-06-30T23:59:59.123Z');
    expect(parsed('2030-06-30T23:59:59.4567Z')).toBe('2030-06-30T23:59:59.456Z');
    expect(parsed('2030-06-30T23:59:59.9999Z')).toBe('2030-06-30T23:59:59.999Z');
  });

  it('accepts 29 February only in leap years (every 4th year, not centuries unless divisible by 400)', () => {
    expect(parsed('2024-02-29')).toBe('2024-02-29T00:00:00.000Z');
    expect(parsed('2000-02-29')).toBe('2000-02-29T00:00:00.000Z');
    expect(parsed('2025-02-29')).toBeUndefined();
    expect(parsed('1900-02-29')).toBeUndefined();
    expect(parsed('2100-02-29T12:00:00Z')).toBeUndefined();
  });

  it.each([
    ['2025-04-31'],
    ['2025-06-31T00:00:00Z'],
    ['2025-02-30'],
    ['2025-00-10'],
    ['2025-13-01'],
    ['2025-01-00'],
    ['2025-01-32'],
  ])('refuses the impossible calendar date %s', (value) => {
    expect(parsed(value)).toBeUndefined();
  });

  it('checks the calendar date as written, before the zone moves it to another day', () => {
    // 28 February 23:00 at -02:00 is 1 March in UTC: valid, and the written date is what counts.
    expect(parsed('2025-02-28T23:00:00-02:00')).toBe('2025-03-01T01:00:00.000Z');
    expect(parsed('2025-02-29T01:00:00+02:00')).toBeUndefined();
  });

  it.each([
    ['2025-06-30T24:00:00Z'],
    ['2025-06-30T23:60:00Z'],
    ['2025-06-30T23:59:60Z'],
    ['2025-06-30T23:59:59+24:00'],
    ['2025-06-30T23:59:59+00:60'],
  ])('refuses the out-of-range time or zone %s', (value) => {
    expect(parsed(value)).toBeUndefined();
  });

  it.each([
    ['2025-06-30T23:59:59', 'a date-time without zone'],
    ['2025-06-30T23:59', 'a date-time without zone or seconds'],
    ['2025-06-30T23:59:59+0200', 'a zone without colon'],
    ['2025-06-30T23:59:59+02', 'a zone without minutes'],
    ['2025-06-30T23:59:59z', 'a lower-case z'],
    ['2025-06-30t23:59:59Z', 'a lower-case t'],
    ['2025-06-30 23:59:59Z', 'a space instead of T'],
    ['2025-06-30T23:59:59.Z', 'a dot without digits'],
    ['2025-6-30', 'a one-digit month'],
    ['20250630', 'the basic format'],
    ['+002025-06-30', 'an expanded year'],
    ['30/06/2025', 'a day-first date'],
    ['June 30, 2025', 'a date in words'],
    [' 2025-06-30', 'a leading blank'],
    ['2025-06-30\n', 'a trailing newline'],
    ['', 'the empty string'],
  ])('refuses %j (%s)', (value) => {
    expect(parsed(value)).toBeUndefined();
  });

  it('accepts the years 1000 to 9999 (UTC) and nothing outside them', () => {
    expect(parsed('1000-01-01')).toBe('1000-01-01T00:00:00.000Z');
    expect(parsed('1000-01-01T00:30:00+00:30')).toBe('1000-01-01T00:00:00.000Z');
    expect(parsed('9999-12-31T23:59:59.999Z')).toBe('9999-12-31T23:59:59.999Z');
    expect(parsed('9999-12-31T23:59:59+01:00')).toBe('9999-12-31T22:59:59.000Z');
    expect(parsed('0999-12-31')).toBeUndefined();
    expect(parsed('0000-01-01')).toBeUndefined();
    expect(parsed('1000-01-01T00:00:00+01:00')).toBeUndefined();
    expect(parsed('9999-12-31T23:59:59-01:00')).toBeUndefined();
  });

  it('reads a two-digit year as that year, not 19xx (and so refuses it)', () => {
    // Date.UTC(99, 11, 31) would be 1999-12-31, inside the accepted range.
    expect(parsed('0099-12-31')).toBeUndefined();
    expect(parsed('0050-06-15T00:00:00Z')).toBeUndefined();
  });

  it('returns a new Date each time', () => {
    const first = parseIsoDate('2030-01-01');
    const second = parseIsoDate('2030-01-01');
    expect(first).toBeInstanceOf(Date);
    expect(first).not.toBe(second);
    first!.setUTCFullYear(2000);
    expect(second!.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });
});

describe('addOneCalendarMonth', () => {
  const next = (iso: string) => addOneCalendarMonth(new Date(iso)).toISOString();

  it('keeps the day of the month and the time of day', () => {
    expect(next('2025-03-15T10:20:30.456Z')).toBe('2025-04-15T10:20:30.456Z');
    expect(next('2025-02-28T00:00:00.000Z')).toBe('2025-03-28T00:00:00.000Z');
    expect(next('2025-04-30T23:59:59.999Z')).toBe('2025-05-30T23:59:59.999Z');
  });

  it.each([
    ['2025-01-31T10:20:30.456Z', '2025-02-28T10:20:30.456Z'],
    ['2025-01-29T00:00:00.000Z', '2025-02-28T00:00:00.000Z'],
    ['2024-01-31T00:00:00.000Z', '2024-02-29T00:00:00.000Z'],
    ['2024-01-30T00:00:00.000Z', '2024-02-29T00:00:00.000Z'],
    ['2100-01-31T00:00:00.000Z', '2100-02-28T00:00:00.000Z'],
    ['2000-01-31T00:00:00.000Z', '2000-02-29T00:00:00.000Z'],
    ['2025-03-31T23:59:59.999Z', '2025-04-30T23:59:59.999Z'],
    ['2025-05-31T12:00:00.000Z', '2025-06-30T12:00:00.000Z'],
    ['2025-08-31T12:00:00.000Z', '2025-09-30T12:00:00.000Z'],
    ['2025-10-31T12:00:00.000Z', '2025-11-30T12:00:00.000Z'],
  ])('clamps %s to the last day of the next month: %s', (from, to) => {
    expect(next(from)).toBe(to);
  });

  it('does not stick to the month end: 28 February is followed by 28 March', () => {
    expect(next('2025-02-28T08:00:00.000Z')).toBe('2025-03-28T08:00:00.000Z');
    expect(next('2024-02-29T08:00:00.000Z')).toBe('2024-03-29T08:00:00.000Z');
  });

  it('goes from December to January of the next year', () => {
    expect(next('2025-12-15T08:00:00.000Z')).toBe('2026-01-15T08:00:00.000Z');
    expect(next('2025-12-31T23:59:59.999Z')).toBe('2026-01-31T23:59:59.999Z');
    expect(next('2025-11-30T00:00:00.000Z')).toBe('2025-12-30T00:00:00.000Z');
  });

  it('works in UTC whatever the instant looked like in another zone', () => {
    // 31 January 23:30 UTC is already 1 February in Central Europe; the UTC day (31) counts.
    expect(next('2025-02-01T00:30:00+01:00')).toBe('2025-02-28T23:30:00.000Z');
  });

  it('handles years below 100 as themselves', () => {
    const result = addOneCalendarMonth(utcDate(50, 1, 31));
    expect(result.getUTCFullYear()).toBe(50);
    expect(result.getUTCMonth()).toBe(1);
    expect(result.getUTCDate()).toBe(28);
  });

  it('leaves its argument unchanged', () => {
    const from = new Date('2025-01-31T10:00:00.000Z');
    const result = addOneCalendarMonth(from);
    expect(from.toISOString()).toBe('2025-01-31T10:00:00.000Z');
    expect(result).not.toBe(from);
  });
});

describe('toIso', () => {
  it('writes a date as ISO 8601 UTC with milliseconds, and null as null', () => {
    expect(toIso(new Date('2030-06-30T23:59:59+02:00'))).toBe('2030-06-30T21:59:59.000Z');
    expect(toIso(utcDate(1000, 1, 1))).toBe('1000-01-01T00:00:00.000Z');
    expect(toIso(null)).toBeNull();
  });
});
