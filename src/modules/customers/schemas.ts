import { type Static, Type } from '@sinclair/typebox';
import {
  CustomerIdInputSchema,
  EmailSchema,
  emptyAsOmitted,
  Id,
  NameSchema,
  NullableString,
  Timestamp,
} from '../../http/schemas.js';
import { LicenseSchema } from '../licenses/schemas.js';

export const CustomerSchema = Type.Object({
  id: Id,
  name: Type.String(),
  email: NullableString,
  active: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  createdBy: Id,
});
export type CustomerView = Static<typeof CustomerSchema>;

/** Every customer response is `{action, status: true, ..., code: 0}`. */
const envelope = <A extends string>(action: A) => ({
  action: Type.Literal(action),
  status: Type.Literal(true),
});

export const ListCustomersQuerySchema = Type.Object({
  page: Type.Optional(Type.String({ format: 'page-number', description: 'integer ≥ 1, default 1' })),
  limit: Type.Optional(
    Type.String({ format: 'positive-integer', description: 'integer ≥ 1, default 10, clamped to 100' }),
  ),
  email: Type.Optional(emptyAsOmitted(Type.String({ maxLength: 254, description: 'exact, case-insensitive' }))),
});

export const ListCustomersResponseSchema = Type.Object({
  ...envelope('getCustomers'),
  data: Type.Array(CustomerSchema),
  meta: Type.Object({
    total: Type.Integer(),
    page: Type.Integer(),
    limit: Type.Integer(),
    totalPages: Type.Integer(),
  }),
  code: Type.Literal(0),
});

/** `POST /customer`. The Go SDK always sends `email`, "" when unset. */
export const CreateCustomerBodySchema = Type.Object({
  name: NameSchema,
  email: Type.Optional(emptyAsOmitted(EmailSchema)),
});
export type CreateCustomerBody = Static<typeof CreateCustomerBodySchema>;

export const CreateCustomerResponseSchema = Type.Object({
  ...envelope('createCustomer'),
  message: Type.String(),
  id: Id,
  data: Type.Object({ id: Id, name: Type.String(), email: NullableString }),
  code: Type.Literal(0),
});

/** `customerId` in the query string: by-id, keys. */
export const CustomerIdQuerySchema = Type.Object({ customerId: CustomerIdInputSchema });

/**
 * The query string of the endpoints that also accept `customerId` in the body. The query value
 * is moved into the body before validation (see routes), so the body schema judges it.
 */
export const OptionalCustomerIdQuerySchema = Type.Object({
  customerId: Type.Optional(Type.String({ description: 'Customer ID (alternative to the body field)' })),
});

const CustomerIdOrQuerySchema = {
  ...CustomerIdInputSchema,
  description: 'Customer ID; may come from the query string instead',
};

/** Body of `DELETE /customer/by-id` and `POST /customer/disable`. */
export const CustomerIdBodySchema = Type.Object({ customerId: CustomerIdOrQuerySchema });

/** `PUT /customer/by-id`: `email: null` clears the email, "" leaves it unchanged. */
export const UpdateCustomerBodySchema = Type.Object({
  customerId: CustomerIdOrQuerySchema,
  name: Type.Optional(NameSchema),
  email: Type.Optional(emptyAsOmitted(Type.Union([EmailSchema, Type.Null()]))),
  active: Type.Optional(Type.Boolean()),
});
export type UpdateCustomerBody = Static<typeof UpdateCustomerBodySchema>;

export const GetCustomerResponseSchema = Type.Object({
  ...envelope('getCustomerById'),
  data: Type.Array(CustomerSchema),
  code: Type.Literal(0),
});

export const UpdateCustomerResponseSchema = Type.Object({
  ...envelope('updateCustomer'),
  message: Type.String(),
  data: CustomerSchema,
  code: Type.Literal(0),
});

export const DeleteCustomerResponseSchema = Type.Object({
  ...envelope('removeCustomer'),
  message: Type.String(),
  code: Type.Literal(0),
});

/** A License without `devices`, `licenseType` and `blocked`. */
export const CustomerLicenseSchema = Type.Omit(LicenseSchema, ['devices', 'licenseType', 'blocked']);

export const CustomerKeysResponseSchema = Type.Object({
  ...envelope('getCustomerLicenseKeys'),
  data: Type.Object({ customer: CustomerSchema, licenseKeys: Type.Array(CustomerLicenseSchema) }),
  code: Type.Literal(0),
});

export const ToggleCustomerResponseSchema = Type.Object({
  ...envelope('toggleActive'),
  message: Type.String(),
  code: Type.Literal(0),
});
