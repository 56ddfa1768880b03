/**
 * JSON text with object keys sorted (by UTF-16 code units) at every depth and no whitespace:
 * equal for values that differ only in key order, e.g. a jsonb value PostgreSQL reordered, or
 * two request bodies an idempotency fingerprint must treat as the same.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, child]) => `${JSON.stringify(name)}:${canonicalJson(child)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
