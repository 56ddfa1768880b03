import type { Customer } from '../../db/schema/index.js';
import type { CustomerView } from './schemas.js';

export const toCustomerView = (customer: Customer): CustomerView => ({
  id: customer.id,
  name: customer.name,
  email: customer.email,
  active: customer.active,
  createdAt: customer.createdAt.toISOString(),
  updatedAt: customer.updatedAt.toISOString(),
  createdBy: customer.accountId,
});
