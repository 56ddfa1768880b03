import { type TSchema, Type } from '@sinclair/typebox';
import { EMPTY_AS_OMITTED } from './validation.js';

/** Schemas every module shares: identifiers, common inputs and the error envelope. */

/** Optional text field where "" means omitted (docs/api.md, "Conventions"). */
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

export const ErrorSchema = Type.Object(
  { message: Type.String(), code: Type.Integer() },
  { $id: 'Error', additionalProperties: false },
);

/** Every route's error responses: the contract's `{message, code}` envelope. */
export const ErrorResponses = { '4xx': ErrorSchema, '5xx': ErrorSchema };

export const Timestamp = Type.String({ format: 'date-time' });
export const Id = Type.String({ pattern: '^[0-9a-f]{22}$' });
export const NullableString = Type.Union([Type.String(), Type.Null()]);

/** Arbitrary JSON object (stored metadata) in responses. */
export const MetadataOutputSchema = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]);
