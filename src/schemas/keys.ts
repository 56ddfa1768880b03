import { Type, type Static } from '@sinclair/typebox';
import {
  CustomerIdInputSchema,
  EmailSchema,
  emptyAsOmitted,
  HeartbeatIntervalSchema,
  Id,
  LicenseKeyInputSchema,
  LicenseTypeSchema,
  MaxConcurrentSessionsSchema,
  MetadataOutputSchema,
  NameSchema,
  NullableActivationLimitSchema,
  NullableAllowedHostsSchema,
  NullableExpiryDateSchema,
  NullableMetadataSchema,
  ProductIdSchema,
  SessionLeaseDurationSchema,
  Timestamp,
} from './common.js';

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
  usesPerKey: Type.Optional(NullableActivationLimitSchema),
  maxActivations: Type.Optional(NullableActivationLimitSchema),
  expiryDate: Type.Optional(NullableExpiryDateSchema),
  customerId: Type.Optional(emptyAsOmitted(CustomerIdInputSchema)),
  newCustomer: Type.Optional(NewCustomerSchema),
  metadata: Type.Optional(NullableMetadataSchema),
  allowedHosts: Type.Optional(NullableAllowedHostsSchema),
  licenseType: Type.Optional(LicenseTypeSchema),
  maxConcurrentSessions: Type.Optional(MaxConcurrentSessionsSchema),
  heartbeatInterval: Type.Optional(HeartbeatIntervalSchema),
  sessionLeaseDuration: Type.Optional(SessionLeaseDurationSchema),
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
export type KeyLookup = Static<typeof KeyLookupSchema>;

export const DeviceSchema = Type.Object({
  hostId: Type.String(),
  deviceTag: Type.Union([Type.String(), Type.Null()]),
  ipAddress: Type.Union([Type.String(), Type.Null()]),
  activationTime: Timestamp,
});

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
export type License = Static<typeof LicenseSchema>;

export const CustomerShortSchema = Type.Object({
  id: Id,
  name: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
});

export const GetKeyResponseSchema = Type.Object({
  code: Type.Literal(0),
  data: Type.Object({
    license: LicenseSchema,
    customer: Type.Union([CustomerShortSchema, Type.Null()]),
  }),
});
export type GetKeyResponse = Static<typeof GetKeyResponseSchema>;
