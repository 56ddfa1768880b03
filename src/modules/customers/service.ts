import type { Db } from '../../db/client.js';
import type { Customer } from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import type { DomainEvent, Outcome } from '../../lib/events.js';
import type { AuthContext } from '../../lib/scopes.js';
import { type LicenseSummary, toLicenseView } from '../licenses/views.js';
import {
  countAndPageCustomers,
  deleteCustomerWithKeys,
  findCustomer,
  hasKeyOutside,
  insertCustomer,
  keysOfCustomer,
  toggleActive,
  updateCustomerRow,
} from './queries.js';
import type { CreateCustomerBody, UpdateCustomerBody } from './schemas.js';

/**
 * Customer operations (docs/api.md, "Customers"). Writes take the request's open transaction and
 * return the customer with the events of the change; the caller owns the transaction and the
 * HTTP envelope.
 */

/** `POST /customer`: an email clash, also a concurrent one, is 409/1. */
export async function createCustomer(
  tx: Db,
  accountId: string,
  body: CreateCustomerBody,
): Promise<Outcome<{ customer: Customer }>> {
  const customer = await insertCustomer(tx, accountId, body, Errors.customerEmailConflict);
  return { customer, events: [{ type: 'customer.created', customerId: customer.id }] };
}

export interface CustomerPage {
  page: number;
  limit: number;
  email?: string;
}

/** `GET /customer`: one page, oldest first; a page past the end is empty. */
export async function listCustomers(db: Db, accountId: string, query: CustomerPage) {
  const { total, rows } = await countAndPageCustomers(db, accountId, {
    offset: (query.page - 1) * query.limit,
    limit: query.limit,
    email: query.email,
  });
  return {
    customers: rows,
    meta: { total, page: query.page, limit: query.limit, totalPages: Math.ceil(total / query.limit) },
  };
}

/** `GET /customer/by-id`. */
export async function getCustomer(db: Db, accountId: string, customerId: string): Promise<Customer> {
  const customer = await findCustomer(db, accountId, customerId);
  if (!customer) throw Errors.customerNotFound();
  return customer;
}

/** `PUT /customer/by-id`: only the fields present change; `email: null` clears it. */
export async function updateCustomer(
  tx: Db,
  accountId: string,
  body: UpdateCustomerBody,
): Promise<Outcome<{ customer: Customer }>> {
  const { customerId, name, email, active } = body;
  const current = await findCustomer(tx, accountId, customerId, { lock: 'update' });
  if (!current) throw Errors.customerNotFound();
  if (name === undefined && email === undefined && active === undefined) return { customer: current, events: [] };
  const customer = await updateCustomerRow(tx, current.id, { name, email, active }, Errors.customerEmailConflict);
  const events: DomainEvent[] = [{ type: 'customer.updated', customerId: customer.id }];
  if (customer.active !== current.active) {
    events.push({ type: customer.active ? 'customer.enabled' : 'customer.disabled', customerId: customer.id });
  }
  return { customer, events };
}

/**
 * `DELETE /customer/by-id`: the customer's keys and their devices go with it. The customer row
 * stays locked from the product check to the delete, so no key of another product can be
 * assigned to it in between. A product-restricted token may delete only a customer whose keys
 * are all of its products.
 */
export async function deleteCustomer(tx: Db, auth: AuthContext, customerId: string): Promise<Outcome<object>> {
  const customer = await findCustomer(tx, auth.accountId, customerId, { lock: 'update' });
  if (!customer) throw Errors.customerNotFound();
  if (auth.productIds !== null && (await hasKeyOutside(tx, customer.id, auth.productIds))) throw Errors.forbidden();
  const deletedKeyIds = await deleteCustomerWithKeys(tx, customer.id);
  return { events: [{ type: 'customer.deleted', customer, deletedKeyIds }] };
}

/** `GET /customer/keys`: the keys of active products the token may see, oldest first. */
export async function getCustomerWithKeys(
  db: Db,
  auth: AuthContext,
  customerId: string,
): Promise<{ customer: Customer; licenseKeys: LicenseSummary[] }> {
  const customer = await getCustomer(db, auth.accountId, customerId);
  const rows = await keysOfCustomer(db, customer.id, auth.productIds);
  const now = Date.now();
  return { customer, licenseKeys: rows.map((row) => toLicenseView(row.key, row.activations, now)) };
}

/** `POST /customer/disable`: one atomic flip; the new state decides the message. */
export async function toggleCustomerActive(
  tx: Db,
  accountId: string,
  customerId: string,
): Promise<Outcome<{ active: boolean }>> {
  const row = await toggleActive(tx, accountId, customerId);
  if (!row) throw Errors.customerNotFound();
  return {
    active: row.active,
    events: [{ type: row.active ? 'customer.enabled' : 'customer.disabled', customerId: row.id }],
  };
}
