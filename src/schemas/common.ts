import { Kind, Type, type TSchema } from '@sinclair/typebox';
import { EMPTY_AS_OMITTED, INT32_MAX, METADATA_KIND } from '../lib/validation.js';

/** Optional text field where "" means omitted (§1.3). */
export const emptyAsOmitted = <T extends TSchema>(schema: T): T => ({ ...schema, [EMPTY_AS_OMITTED]: true });

export const ProductIdSchema = Type.String({ minLength: 22, maxLength: 256, description: 'Product ID' });
export const LicenseKeyInputSchema = Type.String({ minLength: 1, maxLength: 512, description: 'License key' });
export const CustomerIdInputSchema = Type.String({ minLength: 1, maxLength: 256, description: 'Customer ID' });
export const HostIdSchema = Type.String({ minLength: 1, maxLength: 256 });
export const EmailSchema = Type.String({ format: 'email', maxLength: 254 });
export const NameSchema = Type.String({ minLength: 1, maxLength: 255 });
export const IsoDateInputSchema = Type.String({
  format: 'iso-date',
  description: 'ISO 8601 date-time with zone, or a date (YYYY-MM-DD, midnight UTC)',
});

/** Digit string or JSON integer in [1, 2^31-1] (D2). */
export const ActivationLimitSchema = Type.Union([
  Type.String({ format: 'activation-limit' }),
  Type.Integer({ minimum: 1, maximum: INT32_MAX }),
]);

export const MetadataInputSchema = Type.Unsafe<Record<string, unknown>>({
  [Kind]: METADATA_KIND,
  type: 'object',
  additionalProperties: true,
  description: 'JSON object, at most 16 KiB serialized and 8 levels deep',
});

export const AllowedHostsSchema = Type.Array(HostIdSchema, { maxItems: 1000 });

export const LicenseTypeSchema = Type.Union([Type.Literal('node-locked'), Type.Literal('floating')]);

/** Key settings shared by create (§2.1) and update (§2.3): one definition of each constraint. */
export const NullableActivationLimitSchema = Type.Union([ActivationLimitSchema, Type.Null()]);
export const NullableExpiryDateSchema = Type.Union([IsoDateInputSchema, Type.Null()]);
export const NullableMetadataSchema = Type.Union([MetadataInputSchema, Type.Null()]);
export const NullableAllowedHostsSchema = Type.Union([AllowedHostsSchema, Type.Null()]);
export const MaxConcurrentSessionsSchema = Type.Union([Type.Integer({ minimum: 1, maximum: INT32_MAX }), Type.Null()]);
export const HeartbeatIntervalSchema = Type.Integer({ minimum: 60, maximum: INT32_MAX });
export const SessionLeaseDurationSchema = Type.Integer({ minimum: 300, maximum: INT32_MAX });

export const ErrorSchema = Type.Object(
  { message: Type.String(), code: Type.Integer() },
  { $id: 'Error', additionalProperties: false },
);

/** Every route's error responses: the contract's `{message, code}` envelope. */
export const ErrorResponses = { '4xx': ErrorSchema, '5xx': ErrorSchema };

export const Timestamp = Type.String({ format: 'date-time' });
export const Id = Type.String({ pattern: '^[0-9a-f]{22}$' });

/** Arbitrary JSON object (stored metadata) in responses. */
export const MetadataOutputSchema = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]);
