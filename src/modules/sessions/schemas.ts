import { type Static, Type } from '@sinclair/typebox';
import {
  emptyAsOmitted,
  HostIdSchema,
  Id,
  LicenseKeyInputSchema,
  MetadataOutputSchema,
  NullableString,
  ProductIdSchema,
  Timestamp,
} from '../../http/schemas.js';

const Nonce = Type.String({ pattern: '^[0-9a-f]{32}$', description: '32 lowercase hex chars; sign it next' });

/** Body of `POST /key/checkout`, in the order of the contract's field table. */
export const CheckoutBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: HostIdSchema,
  deviceTag: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 256 }))),
  userIdentifier: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 256 }))),
});
export type CheckoutBody = Static<typeof CheckoutBodySchema>;

export const CheckoutResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  sessionId: Id,
  sessionSecret: Type.String({
    pattern: '^[0-9a-f]{64}$',
    description: 'HMAC key of the session (64 lowercase hex chars); shown only here',
  }),
  nextNonce: Nonce,
  expiresAt: Timestamp,
  heartbeatInterval: Type.Integer({ description: 'seconds between heartbeats' }),
  currentSessions: Type.Integer({ description: 'live sessions of the key, this one included' }),
  maxSessions: Type.Union([Type.Integer(), Type.Null()], { description: 'null = unlimited' }),
  metadata: MetadataOutputSchema,
  licenseeName: NullableString,
  licenseeEmail: NullableString,
});
export type Checkout = Omit<Static<typeof CheckoutResponseSchema>, 'code' | 'message'>;

/** Body of `POST /key/heartbeat` and `POST /key/checkin`: every field is required. */
export const SessionCallBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  sessionId: Type.String({ minLength: 1, maxLength: 256, description: 'from the checkout' }),
  timestamp: Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Number()], {
    description: 'the current nonce (nextNonce); a JSON number counts as its decimal string',
  }),
  signature: Type.String({
    minLength: 1,
    maxLength: 1024,
    description: 'hex HMAC-SHA256(key = UTF-8 bytes of sessionSecret, message = "<sessionId>:<nonce>")',
  }),
});
export type SessionCallBody = Static<typeof SessionCallBodySchema>;

export const HeartbeatResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
  expiresAt: Timestamp,
  nextNonce: Nonce,
});

export const CheckinResponseSchema = Type.Object({
  code: Type.Literal(0),
  message: Type.String(),
});
