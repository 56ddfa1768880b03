import { type Static, Type } from '@sinclair/typebox';
import { Id, IsoDateInputSchema, NameSchema, Timestamp } from '../../http/schemas.js';
import { SCOPES } from '../../lib/scopes.js';

export const AccountIdInput = Type.String({ minLength: 1, maxLength: 256 });

export const AccountQuerySchema = Type.Object({ accountId: Type.Optional(AccountIdInput) });
export const IdParamsSchema = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });

export const CreateAccountBodySchema = Type.Object({ name: NameSchema });
export const AccountResponseSchema = Type.Object({ code: Type.Literal(0), id: Id, name: Type.String() });

export const CreateProductBodySchema = Type.Object({
  name: NameSchema,
  accountId: Type.Optional(AccountIdInput),
  active: Type.Optional(Type.Boolean()),
});
export const UpdateProductBodySchema = Type.Object({
  name: Type.Optional(NameSchema),
  active: Type.Optional(Type.Boolean()),
});
const ProductFields = {
  id: Id,
  name: Type.String(),
  active: Type.Boolean(),
  accountId: Id,
};
export const ProductSchema = Type.Object(ProductFields);
export type ProductView = Static<typeof ProductSchema>;
export const ProductResponseSchema = Type.Object({ code: Type.Literal(0), ...ProductFields });
export const ProductListResponseSchema = Type.Object({
  code: Type.Literal(0),
  data: Type.Array(ProductSchema),
});

export const CreateTokenBodySchema = Type.Object({
  name: NameSchema,
  accountId: Type.Optional(AccountIdInput),
  // Scope names are checked here, not only in the service, so that `Invalid scopes` is reported
  // before the fields after it (docs/api.md, "Order of checks").
  scopes: Type.Optional(
    Type.Array(Type.Union(SCOPES.map((scope) => Type.Literal(scope))), { minItems: 1, maxItems: 7 }),
  ),
  productIds: Type.Optional(
    Type.Union([
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 1000 }),
      Type.Null(),
    ]),
  ),
  expiresAt: Type.Optional(IsoDateInputSchema),
});
const TokenFields = {
  id: Id,
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  productIds: Type.Union([Type.Array(Type.String()), Type.Null()]),
  accountId: Id,
  createdAt: Timestamp,
};
export const CreateTokenResponseSchema = Type.Object({
  code: Type.Literal(0),
  ...TokenFields,
  token: Type.String(),
});
export const TokenSchema = Type.Object({ ...TokenFields, expiresAt: Type.Union([Timestamp, Type.Null()]) });
export type TokenView = Static<typeof TokenSchema>;
export const TokenListResponseSchema = Type.Object({ code: Type.Literal(0), data: Type.Array(TokenSchema) });
export const MessageResponseSchema = Type.Object({ code: Type.Literal(0), message: Type.String() });
