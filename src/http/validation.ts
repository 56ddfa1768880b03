import { FormatRegistry, Kind, type TSchema, TypeRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parseIsoDate } from '../lib/dates.js';
import { Errors } from '../lib/errors.js';

/**
 * Request validation with the contract's messages (docs/api.md, "Conventions" and "Order of checks"):
 * - a required field that is absent, null or "" -> 400/1 `Missing required params`
 *   (checked first, nested objects included);
 * - null on an optional field that does not accept null means "omitted";
 * - "" on a field marked `emptyAsOmitted` means "omitted";
 * - otherwise the first invalid field, in schema (= field table) order -> `Invalid <field>`.
 * Every string must be well-formed Unicode without NUL: PostgreSQL cannot store anything else.
 */

export const EMPTY_AS_OMITTED = 'x-empty-as-omitted';

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
FormatRegistry.Set('email', (value) => value.length <= 254 && EMAIL.test(value) && !/\s/.test(value));
FormatRegistry.Set('iso-date', (value) => parseIsoDate(value) !== undefined);

const METADATA_MAX_BYTES = 16 * 1024;
const METADATA_MAX_DEPTH = 8;

function depthOf(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0;
  if (limit <= 0) return 1;
  let max = 0;
  for (const child of Object.values(value)) max = Math.max(max, depthOf(child, limit - 1));
  return max + 1;
}

export const METADATA_KIND = 'KeymintMetadata';
TypeRegistry.Set(METADATA_KIND, (_schema, value) => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  if (depthOf(value, METADATA_MAX_DEPTH + 1) > METADATA_MAX_DEPTH) return false;
  return Buffer.byteLength(JSON.stringify(value), 'utf8') <= METADATA_MAX_BYTES;
});

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  anyOf?: SchemaNode[];
  [EMPTY_AS_OMITTED]?: boolean;
  [Kind]?: string;
}

const acceptsNull = (schema: SchemaNode): boolean =>
  schema.type === 'null' || (schema.anyOf?.some(acceptsNull) ?? false);

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** Applies the null / "" rules in place; returns true when a required field is missing. */
function normalize(schema: SchemaNode, value: Record<string, unknown>): boolean {
  let missing = false;
  const required = schema.required ?? [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const current = value[name];
    const isRequired = required.includes(name);
    if (current === undefined || current === null || (current === '' && (isRequired || property[EMPTY_AS_OMITTED]))) {
      if (isRequired) missing = true;
      else if (current === '' || (current === null && !acceptsNull(property))) delete value[name];
      continue;
    }
    if (property.type === 'object' && property.properties && isPlainObject(current)) {
      missing = normalize(property, current) || missing;
    }
  }
  return missing;
}

const unstorable = (node: unknown, depth: number): boolean => {
  if (typeof node === 'string') return node.includes('\u0000') || !node.isWellFormed();
  if (node === null || typeof node !== 'object' || depth > 64) return false;
  for (const [key, child] of Object.entries(node)) {
    if (unstorable(key, depth + 1) || unstorable(child, depth + 1)) return true;
  }
  return false;
};

/** Finds the first field (in schema order) holding a string PostgreSQL cannot store. */
function firstUnstorableField(schema: SchemaNode, value: Record<string, unknown>): string | undefined {
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const current = value[name];
    if (!unstorable(current, 0)) continue;
    if (property.type === 'object' && property.properties && isPlainObject(current)) {
      const nested = firstUnstorableField(property, current);
      if (nested) return `${name}.${nested}`;
    }
    return name;
  }
  return undefined;
}

const fieldName = (path: string): string =>
  path
    .split('/')
    .filter((segment) => segment !== '' && !/^\d+$/.test(segment))
    .join('.');

export type ValidationPart = 'body' | 'querystring' | 'params' | 'headers';

/** Fastify validator compiler: `{value}` on success, `{error: AppError}` otherwise. */
export function compileValidator(schema: TSchema, part: ValidationPart) {
  const check = TypeCompiler.Compile(schema);
  const node = schema as unknown as SchemaNode;
  const order = Object.keys(node.properties ?? {});
  return (input: unknown) => {
    // A bodiless request is `{}`; the parser already rejected non-object bodies.
    const data = input === null || input === undefined ? {} : input;
    if (!isPlainObject(data)) return { error: Errors.invalidJson() };
    if (normalize(node, data)) return { error: Errors.missingParams() };
    const unstorable = firstUnstorableField(node, data);
    const first = check.Check(data) ? undefined : check.Errors(data).First();
    if (!first && !unstorable) return { value: data };
    const invalid = first ? fieldName(first.path) : undefined;
    const topLevel = (field: string | undefined) => (field ? order.indexOf(field.split('.')[0] ?? '') : Infinity);
    const field = topLevel(unstorable) < topLevel(invalid) ? unstorable : invalid;
    return { error: Errors.invalidField(field || (part === 'querystring' ? 'query' : 'body')) };
  };
}

/** A digit string (no sign, spaces or decimals) whose value lies in [minimum, maximum]. */
function registerDigitRange(name: string, minimum: number, maximum: number) {
  FormatRegistry.Set(name, (value) => {
    if (!/^[0-9]+$/.test(value)) return false;
    // Leading zeros do not change the value; the length cap keeps Number() exact.
    const digits = value.replace(/^0+(?=.)/, '');
    if (digits.length > 12) return false;
    const number = Number(digits);
    return number >= minimum && number <= maximum;
  });
}
export const INT32_MAX = 2_147_483_647;
registerDigitRange('activation-limit', 1, INT32_MAX);
registerDigitRange('amount-keys', 1, 1000);
registerDigitRange('page-number', 1, INT32_MAX);
FormatRegistry.Set('positive-integer', (value) => /^[0-9]+$/.test(value) && /[1-9]/.test(value));
