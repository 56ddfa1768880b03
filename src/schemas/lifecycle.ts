import { Type, type Static } from '@sinclair/typebox';
import {
  CustomerIdInputSchema,
  EmailSchema,
  emptyAsOmitted,
  HeartbeatIntervalSchema,
  HostIdSchema,
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
import { NewCustomerSchema } from './keys.js';

/** Body of `POST /key/activate` and `POST /activate-key` (§2.4), in field-table order. */
export const ActivateBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: Type.Optional(emptyAsOmitted(HostIdSchema)),
  deviceTag: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 256 }))),
  licensee: Type.Optional(Type.Object({ name: NameSchema, email: EmailSchema })),
});
export type ActivateBody = Static<typeof ActivateBodySchema>;

/** v2 activation answer; `/activate-key` serves it through `toV1Schema`. */
export const ActivateResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  licenseeName: Type.Union([Type.String(), Type.Null()]),
  licenseeEmail: Type.Union([Type.String(), Type.Null()]),
  hostId: Type.String(),
  expirationDate: Type.Union([Timestamp, Type.Null()]),
  metadata: MetadataOutputSchema,
  allowedHosts: Type.Union([Type.Array(Type.String()), Type.Null()]),
});
export type ActivateResponse = Static<typeof ActivateResponseSchema>;

/** Body of `POST /key/deactivate` and `POST /deactivate-key` (§2.5). */
export const DeactivateBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: Type.Optional(emptyAsOmitted(HostIdSchema)),
});
export type DeactivateBody = Static<typeof DeactivateBodySchema>;

/** `{message, code}` success answers of deactivate and block/unblock. */
export const LifecycleMessageResponseSchema = Type.Object({
  message: Type.String(),
  code: Type.Literal(0),
});

/** Body of `PATCH /key` (§2.3): omitted = unchanged, null clears where the table allows it. */
export const UpdateKeyBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  maxActivations: Type.Optional(NullableActivationLimitSchema),
  usesPerKey: Type.Optional(NullableActivationLimitSchema),
  expiryDate: Type.Optional(NullableExpiryDateSchema),
  customerId: Type.Optional(Type.Union([CustomerIdInputSchema, Type.Null()])),
  newCustomer: Type.Optional(NewCustomerSchema),
  metadata: Type.Optional(NullableMetadataSchema),
  allowedHosts: Type.Optional(NullableAllowedHostsSchema),
  licenseType: Type.Optional(LicenseTypeSchema),
  maxConcurrentSessions: Type.Optional(MaxConcurrentSessionsSchema),
  heartbeatInterval: Type.Optional(HeartbeatIntervalSchema),
  sessionLeaseDuration: Type.Optional(SessionLeaseDurationSchema),
});
export type UpdateKeyBody = Static<typeof UpdateKeyBodySchema>;

export const UpdateKeyResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  affectedCount: Type.Integer(),
});
