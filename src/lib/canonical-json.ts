/** Literal text waiting on the work stack, told apart from values still to be written. */
class Text {
  constructor(readonly text: string) {}
}

/**
 * JSON text with object keys sorted (by UTF-16 code units) at every depth and no whitespace:
 * equal for values that differ only in key order, e.g. a jsonb value PostgreSQL reordered, or
 * two request bodies an idempotency fingerprint must treat as the same.
 *
 * Iterative (an explicit work stack, not recursion): a request body may nest as deep as the
 * JSON parser allows (100k levels in an ignored field), and that must not overflow the stack.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  const work: unknown[] = [value];
  while (work.length > 0) {
    const item = work.pop();
    if (item instanceof Text) {
      out.push(item.text);
    } else if (Array.isArray(item)) {
      // Pushed in reverse: the first element is popped (written) first.
      work.push(new Text(']'));
      for (let index = item.length - 1; index >= 0; index--) {
        work.push(item[index] ?? null);
        if (index > 0) work.push(new Text(','));
      }
      out.push('[');
    } else if (item !== null && typeof item === 'object') {
      const entries = Object.entries(item)
        .filter(([, child]) => child !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      work.push(new Text('}'));
      for (let index = entries.length - 1; index >= 0; index--) {
        const [name, child] = entries[index]!;
        work.push(child, new Text(`${index > 0 ? ',' : ''}${JSON.stringify(name)}:`));
      }
      out.push('{');
    } else {
      out.push(JSON.stringify(item));
    }
  }
  return out.join('');
}
