import { Kind, OptionalKind, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { toV1, toV1Schema } from '../../src/lib/v1-names.js';

/** The nine v2 names and their v1 spelling (§1.11). */
const RENAMED = {
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

/** A GET /key document in v2 names. */
const v2Document = () => ({
  code: 0,
  data: {
    license: {
      id: 'a'.repeat(22),
      key: 'AAAAA-BBBBB',
      productId: 'p'.repeat(22),
      maxActivations: 2,
      activations: 1,
      devices: [
        { hostId: 'host-1', deviceTag: 'tag', ipAddress: '198.51.100.1', activationTime: '2030-05-05T05:05:05.005Z' },
      ],
      activated: true,
      expirationDate: '2031-01-01T00:00:00.000Z',
      metadata: { productId: 'kept', maxActivations: 1, nested: { hostId: 'kept too' }, list: [{ deviceTag: 'x' }] },
      allowedHosts: ['host-1'],
      licenseType: 'node-locked',
      blocked: false,
    },
    customer: { id: 'c'.repeat(22), name: 'Legacy', email: null, active: true },
  },
});

describe('toV1', () => {
  it('renames exactly the nine v1 fields', () => {
    const document = Object.fromEntries(Object.keys(RENAMED).map((name, i) => [name, i]));
    expect(toV1(document)).toEqual(Object.fromEntries(Object.values(RENAMED).map((name, i) => [name, i])));
    const kept = {
      id: 1,
      key: 2,
      licenseKey: 3,
      customerId: 4,
      allowedHosts: 5,
      licenseType: 6,
      maxConcurrentSessions: 7,
      heartbeatInterval: 8,
      sessionLeaseDuration: 9,
      createdAt: 10,
      updatedAt: 11,
      product_id: 12,
      ProductId: 13,
      productid: 14,
    };
    expect(toV1(kept)).toEqual(kept);
  });

  it('renames at any depth, in arrays too, and leaves every other name and all values as they are', () => {
    expect(toV1(v2Document())).toEqual({
      code: 0,
      data: {
        license: {
          id: 'a'.repeat(22),
          key: 'AAAAA-BBBBB',
          product_id: 'p'.repeat(22),
          max_activations: 2,
          activations: 1,
          devices: [
            {
              host_id: 'host-1',
              device_tag: 'tag',
              ip_address: '198.51.100.1',
              activation_time: '2030-05-05T05:05:05.005Z',
            },
          ],
          activated: true,
          expiration_date: '2031-01-01T00:00:00.000Z',
          metadata: {
            productId: 'kept',
            maxActivations: 1,
            nested: { hostId: 'kept too' },
            list: [{ deviceTag: 'x' }],
          },
          allowedHosts: ['host-1'],
          licenseType: 'node-locked',
          blocked: false,
        },
        customer: { id: 'c'.repeat(22), name: 'Legacy', email: null, active: true },
      },
    });
  });

  it('leaves metadata as stored, whatever it holds and wherever it is', () => {
    const metadata = { productId: 'p', hostId: 'h', deep: [{ licenseeName: 'n' }], metadata: { expirationDate: 'e' } };
    const renamed = toV1({ metadata, data: { license: { metadata } } }) as any;
    expect(renamed.metadata).toEqual(metadata);
    expect(renamed.data.license.metadata).toEqual(metadata);
    expect(renamed.metadata).toBe(metadata);
    expect(toV1({ metadata: null })).toEqual({ metadata: null });
    expect(toV1({ metadata: ['productId'] })).toEqual({ metadata: ['productId'] });
  });

  it('keeps the order of the fields', () => {
    const renamed = toV1({ code: 0, productId: 'p', blocked: false, hostId: 'h' }) as object;
    expect(Object.keys(renamed)).toEqual(['code', 'product_id', 'blocked', 'host_id']);
  });

  it('does not rename values, only names', () => {
    expect(toV1({ licenseType: 'productId', allowedHosts: ['hostId'] })).toEqual({
      licenseType: 'productId',
      allowedHosts: ['hostId'],
    });
    expect(toV1('productId')).toBe('productId');
  });

  it('passes through primitives, null and Date values', () => {
    const when = new Date('2030-01-01T00:00:00.000Z');
    expect(toV1(5)).toBe(5);
    expect(toV1(null)).toBeNull();
    expect(toV1(undefined)).toBeUndefined();
    expect(toV1(true)).toBe(true);
    expect(toV1(when)).toBe(when);
    expect((toV1({ activationTime: when }) as any).activation_time).toBe(when);
  });

  it('maps a top-level array item by item', () => {
    expect(toV1([{ hostId: 'a' }, { hostId: 'b', deviceTag: null }, 3])).toEqual([
      { host_id: 'a' },
      { host_id: 'b', device_tag: null },
      3,
    ]);
  });

  it('returns a new document and leaves its argument unchanged', () => {
    const document = v2Document();
    const renamed = toV1(document);
    expect(document).toEqual(v2Document());
    expect(renamed).not.toBe(document);
  });
});

describe('toV1Schema', () => {
  const Device = Type.Object({
    hostId: Type.String(),
    deviceTag: Type.Union([Type.String(), Type.Null()]),
    ipAddress: Type.Union([Type.String(), Type.Null()]),
    activationTime: Type.String(),
  });
  const Metadata = Type.Union([Type.Object({ productId: Type.String() }, { additionalProperties: true }), Type.Null()]);
  const License = Type.Object({
    id: Type.String(),
    productId: Type.String(),
    maxActivations: Type.Union([Type.Integer(), Type.Null()]),
    devices: Type.Array(Device),
    expirationDate: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    metadata: Metadata,
    allowedHosts: Type.Union([Type.Array(Type.String()), Type.Null()]),
  });
  const Response = Type.Object({ code: Type.Literal(0), data: Type.Object({ license: License }) });

  it('renames properties and required names, at any depth (objects, arrays, unions)', () => {
    const v1 = toV1Schema(Response) as any;
    const license = v1.properties.data.properties.license;
    expect(Object.keys(license.properties)).toEqual([
      'id',
      'product_id',
      'max_activations',
      'devices',
      'expiration_date',
      'metadata',
      'allowedHosts',
    ]);
    expect(license.required).toEqual(['id', 'product_id', 'max_activations', 'devices', 'metadata', 'allowedHosts']);
    expect(Object.keys(license.properties.devices.items.properties)).toEqual([
      'host_id',
      'device_tag',
      'ip_address',
      'activation_time',
    ]);
    expect(license.properties.devices.items.required).toEqual([
      'host_id',
      'device_tag',
      'ip_address',
      'activation_time',
    ]);
    expect(v1.required).toEqual(['code', 'data']);
  });

  it('renames inside anyOf members too', () => {
    const v1 = toV1Schema(Type.Union([Type.Object({ hostId: Type.String() }), Type.Null()])) as any;
    expect(v1.anyOf[0].properties).toHaveProperty('host_id');
    expect(v1.anyOf[0].properties).not.toHaveProperty('hostId');
    expect(v1.anyOf[0].required).toEqual(['host_id']);
  });

  it('leaves the metadata schema as it is', () => {
    const v1 = toV1Schema(License) as any;
    expect(v1.properties.metadata).toEqual(Metadata);
    expect(v1.properties.metadata.anyOf[0].properties).toHaveProperty('productId');
    expect(v1.properties.metadata.anyOf[0].required).toEqual(['productId']);
  });

  it('keeps the other keywords, and the TypeBox kind and optional markers', () => {
    const v1 = toV1Schema(License) as any;
    expect(v1.type).toBe('object');
    expect(v1[Kind]).toBe('Object');
    expect(v1.properties.product_id[Kind]).toBe('String');
    expect(v1.properties.max_activations.anyOf.map((member: any) => member[Kind])).toEqual(['Integer', 'Null']);
    expect(v1.properties.devices[Kind]).toBe('Array');
    expect(v1.properties.devices.items[Kind]).toBe('Object');
    expect(v1.properties.expiration_date[OptionalKind]).toBe('Optional');
  });

  it('the v1 schema accepts the v1 document and refuses the v2 one', () => {
    const v2 = v2Document();
    const document = { code: 0, data: { license: { ...v2.data.license } } };
    expect(Value.Check(Response, document)).toBe(true);
    const v1Schema = toV1Schema(Response);
    expect(Value.Check(v1Schema, toV1(document))).toBe(true);
    expect(Value.Check(v1Schema, document)).toBe(false);
  });

  it('leaves its argument unchanged', () => {
    const before = JSON.stringify(Response);
    const v1 = toV1Schema(Response);
    expect(JSON.stringify(Response)).toBe(before);
    expect((Response as any).properties.data.properties.license.properties).toHaveProperty('productId');
    expect(v1).not.toBe(Response);
  });
});
