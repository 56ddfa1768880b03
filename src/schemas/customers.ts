import { Type } from '@sinclair/typebox';
import { emptyAsOmitted, Id, Timestamp } from './common.js';

export const CustomerSchema = Type.Object({
  id: Id,
  name: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  createdBy: Id,
});

export const ListCustomersQuerySchema = Type.Object({
  page: Type.Optional(Type.String({ format: 'page-number', description: 'integer ≥ 1, default 1' })),
  limit: Type.Optional(
    Type.String({ format: 'positive-integer', description: 'integer ≥ 1, default 10, clamped to 100' }),
  ),
  email: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 254, description: 'exact, case-insensitive' }))),
});

export const ListCustomersResponseSchema = Type.Object({
  action: Type.Literal('getCustomers'),
  status: Type.Literal(true),
  data: Type.Array(CustomerSchema),
  meta: Type.Object({
    total: Type.Integer(),
    page: Type.Integer(),
    limit: Type.Integer(),
    totalPages: Type.Integer(),
  }),
  code: Type.Literal(0),
});
