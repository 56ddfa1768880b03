import type { TSchema } from '@sinclair/typebox';

/** Legacy (v1) response names (docs/api.md, "Legacy v1 paths"): one mapping, applied to documents and their schemas. */
const V1_NAMES: Readonly<Record<string, string>> = {
  productId: 'product_id',
  maxActivations: 'max_activations',
  hostId: 'host_id',
  deviceTag: 'device_tag',
  ipAddress: 'ip_address',
  activationTime: 'activation_time',
  expirationDate: 'expiration_date',
  licenseeName: 'licensee_name',
  licenseeEmail: 'licensee_email',
};

// User data is returned as stored, never renamed.
const OPAQUE = new Set(['metadata']);

export function toV1<T>(value: T): unknown {
  if (Array.isArray(value)) return value.map((item) => toV1(item));
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [name, child] of Object.entries(value)) {
    out[V1_NAMES[name] ?? name] = OPAQUE.has(name) ? child : toV1(child);
  }
  return out;
}

/** The response schema of a v1 path: the v2 schema with its property names mapped. */
export function toV1Schema<T extends TSchema>(schema: T): TSchema {
  const rename = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rename);
    if (node === null || typeof node !== 'object') return node;
    const source = node as Record<string | symbol, unknown>;
    const out: Record<string | symbol, unknown> = {};
    for (const symbol of Object.getOwnPropertySymbols(source)) out[symbol] = source[symbol];
    for (const [name, child] of Object.entries(source)) {
      if (name === 'properties' && child && typeof child === 'object') {
        const properties: Record<string, unknown> = {};
        for (const [prop, propSchema] of Object.entries(child)) {
          properties[V1_NAMES[prop] ?? prop] = OPAQUE.has(prop) ? propSchema : rename(propSchema);
        }
        out[name] = properties;
      } else if (name === 'required' && Array.isArray(child)) {
        out[name] = child.map((prop: string) => V1_NAMES[prop] ?? prop);
      } else {
        out[name] = rename(child);
      }
    }
    return out;
  };
  return rename(schema) as TSchema;
}
