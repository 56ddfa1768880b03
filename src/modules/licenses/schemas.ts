import { Kind, type Static, Type } from '@sinclair/typebox';
import {
  CustomerIdInputSchema,
  EmailSchema,
  emptyAsOmitted,
  HostIdSchema,
  Id,
  IsoDateInputSchema,
  LicenseKeyInputSchema,
  MetadataOutputSchema,
  NameSchema,
  NullableString,
  ProductIdSchema,
  Timestamp,
} from '../../http/schemas.js';
import { INT32_MAX, METADATA_KIND } from '../../http/validation.js';
import { LICENSE_TYPES } from './policy.js';

export const LicenseTypeSchema = Type.Union(LICENSE_TYPES.map((type) => Type.Literal(type)));

/** Digit string or JSON integer in [1, 2^31-1]. */
const ActivationLimitSchema = Type.Union([
  Type.String({ format: 'activation-limit' }),
  Type.Integer({ minimum: 1, maximum: INT32_MAX }),
]);

const MetadataInputSchema = Type.Unsafe<Record<string, unknown>>({
  [Kind]: METADATA_KIND,
  type: 'object',
  additionalProperties: true,
  description: 'JSON object, at most 16 KiB serialized and 8 levels deep',
});

/**
 * The key settings that create and update share, each constraint defined once. A body lists
 * them in the order of its field table (validation reports the first invalid field in order).
 */
export const KeySettings = {
  usesPerKey: Type.Optional(Type.Union([ActivationLimitSchema, Type.Null()])),
  maxActivations: Type.Optional(Type.Union([ActivationLimitSchema, Type.Null()])),
  expiryDate: Type.Optional(Type.Union([IsoDateInputSchema, Type.Null()])),
  metadata: Type.Optional(Type.Union([MetadataInputSchema, Type.Null()])),
  allowedHosts: Type.Optional(Type.Union([Type.Array(HostIdSchema, { maxItems: 1000 }), Type.Null()])),
  licenseType: Type.Optional(LicenseTypeSchema),
  maxConcurrentSessions: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: INT32_MAX }), Type.Null()])),
  heartbeatInterval: Type.Optional(Type.Integer({ minimum: 60, maximum: INT32_MAX })),
  sessionLeaseDuration: Type.Optional(Type.Integer({ minimum: 300, maximum: INT32_MAX })),
};

const FloatingSettings = {
  licenseType: KeySettings.licenseType,
  maxConcurrentSessions: KeySettings.maxConcurrentSessions,
  heartbeatInterval: KeySettings.heartbeatInterval,
  sessionLeaseDuration: KeySettings.sessionLeaseDuration,
};

export const NewCustomerSchema = Type.Object({
  name: NameSchema,
  email: Type.Optional(emptyAsOmitted(EmailSchema)),
});

export const KeyFormatSchema = Type.Object({
  sections: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
  sectionLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })),
  separator: Type.Optional(Type.String({ maxLength: 3 })),
  // No whitespace, and no characters outside the Basic Multilingual Plane (keys are drawn
  // per UTF-16 unit).
  charset: Type.Optional(Type.String({ minLength: 2, maxLength: 100, pattern: '^[^\\s\\uD800-\\uDFFF]+$' })),
  prefix: Type.Optional(Type.String({ maxLength: 16 })),
  suffix: Type.Optional(Type.String({ maxLength: 16 })),
  case: Type.Optional(Type.Union([Type.Literal('upper'), Type.Literal('lower'), Type.Literal('mixed')])),
});

/** Body of `POST /key` and `POST /create-key`, fields in the order of the contract's table. */
export const CreateKeyBodySchema = Type.Object({
  productId: ProductIdSchema,
  usesPerKey: KeySettings.usesPerKey,
  maxActivations: KeySettings.maxActivations,
  expiryDate: KeySettings.expiryDate,
  customerId: Type.Optional(emptyAsOmitted(CustomerIdInputSchema)),
  newCustomer: Type.Optional(NewCustomerSchema),
  metadata: KeySettings.metadata,
  allowedHosts: KeySettings.allowedHosts,
  ...FloatingSettings,
  format: Type.Optional(KeyFormatSchema),
  amountKeys: Type.Optional(
    Type.Union([Type.String({ format: 'amount-keys' }), Type.Integer({ minimum: 1, maximum: 1000 })]),
  ),
});
export type CreateKeyBody = Static<typeof CreateKeyBodySchema>;

export const CreateKeyResponseSchema = Type.Object({
  code: Type.Literal(0),
  key: Type.String(),
  keys: Type.Optional(Type.Array(Type.String())),
});

export const KeyLookupSchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
});

/** Body of `PATCH /key`: omitted = unchanged, null clears where the field allows it. */
export const UpdateKeyBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  maxActivations: KeySettings.maxActivations,
  usesPerKey: KeySettings.usesPerKey,
  expiryDate: KeySettings.expiryDate,
  customerId: Type.Optional(Type.Union([CustomerIdInputSchema, Type.Null()])),
  newCustomer: Type.Optional(NewCustomerSchema),
  metadata: KeySettings.metadata,
  allowedHosts: KeySettings.allowedHosts,
  ...FloatingSettings,
});
export type UpdateKeyBody = Static<typeof UpdateKeyBodySchema>;

export const UpdateKeyResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  affectedCount: Type.Integer(),
});

export const DeviceSchema = Type.Object({
  hostId: Type.String(),
  deviceTag: NullableString,
  ipAddress: NullableString,
  activationTime: Timestamp,
});
export type DeviceView = Static<typeof DeviceSchema>;

export const LicenseSchema = Type.Object({
  id: Id,
  key: Type.String(),
  productId: Type.String(),
  maxActivations: Type.Union([Type.Integer(), Type.Null()]),
  activations: Type.Integer(),
  devices: Type.Array(DeviceSchema),
  activated: Type.Boolean(),
  expirationDate: Type.Union([Timestamp, Type.Null()]),
  metadata: MetadataOutputSchema,
  allowedHosts: Type.Union([Type.Array(Type.String()), Type.Null()]),
  licenseType: LicenseTypeSchema,
  blocked: Type.Boolean(),
});
export type LicenseView = Static<typeof LicenseSchema>;

export const CustomerShortSchema = Type.Object({
  id: Id,
  name: Type.String(),
  email: NullableString,
  active: Type.Boolean(),
});

export const GetKeyResponseSchema = Type.Object({
  code: Type.Literal(0),
  data: Type.Object({
    license: LicenseSchema,
    customer: Type.Union([CustomerShortSchema, Type.Null()]),
  }),
});
export type LicenseWithCustomer = Static<typeof GetKeyResponseSchema>['data'];

/** Body of `POST /key/activate` and `POST /activate-key`, in field-table order. */
export const ActivateBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: Type.Optional(emptyAsOmitted(HostIdSchema)),
  deviceTag: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 256 }))),
  licensee: Type.Optional(Type.Object({ name: NameSchema, email: EmailSchema })),
});
export type ActivateBody = Static<typeof ActivateBodySchema>;

/** The v2 activation answer; `/activate-key` serves it with v1 names. */
export const ActivateResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  licenseeName: NullableString,
  licenseeEmail: NullableString,
  hostId: Type.String(),
  expirationDate: Type.Union([Timestamp, Type.Null()]),
  metadata: MetadataOutputSchema,
  allowedHosts: Type.Union([Type.Array(Type.String()), Type.Null()]),
});
export type Activation = Omit<Static<typeof ActivateResponseSchema>, 'code' | 'message'>;

/** Body of `POST /key/deactivate` and `POST /deactivate-key`. */
export const DeactivateBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: Type.Optional(emptyAsOmitted(HostIdSchema)),
});
export type DeactivateBody = Static<typeof DeactivateBodySchema>;

/** `{message, code}` success answers of deactivate and block/unblock. */
export const MessageResponseSchema = Type.Object({
  message: Type.String(),
  code: Type.Literal(0),
});
