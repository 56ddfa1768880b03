import { asc, eq } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { type Product, products } from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { resolveAccountId } from './accounts.js';
import type { ProductView } from './schemas.js';

/** Products of an account: shared by the admin API and the CLI. */

const toProductView = (product: Product): ProductView => ({
  id: product.id,
  name: product.name,
  active: product.active,
  accountId: product.accountId,
});

export async function createProduct(db: Db, input: { name: string; accountId?: string; active?: boolean }) {
  const accountId = await resolveAccountId(db, input.accountId);
  const [product] = await db
    .insert(products)
    .values({ id: newId(), accountId, name: input.name, active: input.active ?? true })
    .returning();
  return toProductView(product!);
}

export async function updateProduct(db: Db, id: string, input: { name?: string; active?: boolean }) {
  const changes: Partial<Product> = {};
  if (input.name !== undefined) changes.name = input.name;
  if (input.active !== undefined) changes.active = input.active;
  const [product] =
    Object.keys(changes).length > 0
      ? await db.update(products).set(changes).where(eq(products.id, id)).returning()
      : await db.select().from(products).where(eq(products.id, id)).limit(1);
  if (!product) throw Errors.productNotFound();
  return toProductView(product);
}

export async function listProducts(db: Db, accountId: string | undefined) {
  const account = await resolveAccountId(db, accountId);
  const rows = await db
    .select()
    .from(products)
    .where(eq(products.accountId, account))
    .orderBy(asc(products.createdAt), asc(products.id));
  return rows.map(toProductView);
}
