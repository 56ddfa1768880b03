import { type Static, Type } from '@sinclair/typebox';
import { HostIdSchema, LicenseKeyInputSchema, ProductIdSchema, Timestamp } from '../../http/schemas.js';
import { INT32_MAX } from '../../http/validation.js';

/** base64url(SHA-256(SPKI DER)), no padding. */
const KidSchema = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'Key ID' });

/** Body of `POST /key/sign`, in field-table order. */
export const SignBodySchema = Type.Object({
  productId: ProductIdSchema,
  licenseKey: LicenseKeyInputSchema,
  hostId: { ...HostIdSchema, description: 'The machine the file is for (claim `machine`)' },
  ttl: Type.Optional(
    Type.Integer({
      minimum: 60,
      maximum: INT32_MAX,
      description:
        'Lifetime in seconds; the file expires at the earlier of now + ttl and the key expiry. Required for keys without an expiry',
    }),
  ),
});
export type SignBody = Static<typeof SignBodySchema>;

export const LicenseFileSchema = Type.Object({
  licenseToken: Type.String({ description: 'Compact JWS (JWT) signed with Ed25519 (alg EdDSA)' }),
  signedKey: Type.String({ description: 'The license key (claims `sub` and `key`)' }),
  signedDate: { ...Timestamp, description: 'The `iat` claim' },
  keyId: { ...KidSchema, description: 'The `kid` of the token header: the JWKS entry that verifies it' },
});
export type LicenseFile = Static<typeof LicenseFileSchema>;

export const SignResponseSchema = Type.Object({ code: Type.Literal(0), file: LicenseFileSchema });

export const JwkSchema = Type.Object({
  kty: Type.Literal('OKP'),
  crv: Type.Literal('Ed25519'),
  alg: Type.Literal('EdDSA'),
  use: Type.Literal('sig'),
  kid: KidSchema,
  x: Type.String({ description: 'The public key, base64url' }),
});

export const JwksResponseSchema = Type.Object({
  keys: Type.Array(JwkSchema, { description: 'The current key first, then the retired ones, newest first' }),
  code: Type.Literal(0),
});

export const RotateResponseSchema = Type.Object({
  code: Type.Literal(0),
  kid: KidSchema,
  retired: Type.Array(KidSchema),
});
