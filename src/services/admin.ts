import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { accessTokens, accounts, products, type AccessToken, type Product } from '../db/schema/index.js';
import { Errors } from '../lib/errors.js';
import { newAccessToken, newId, sha256Hex } from '../lib/ids.js';
import { SCOPES } from '../lib/scopes.js';

/** Accounts, products and access tokens: shared by the admin API (§9) and the CLI. */

export async function resolveAccountId(db: Db, accountId: string | undefined): Promise<string> {
  const [account] = await db
    .select({ id: accounts.id })
    .from(accounts)
    .where(accountId === undefined ? eq(accounts.isDefault, true) : eq(accounts.id, accountId))
    .limit(1);
  if (!account) throw Errors.accountNotFound();
  return account.id;
}

export async function createAccount(db: Db, name: string) {
  const [account] = await db.insert(accounts).values({ id: newId(), name }).returning();
  return { id: account!.id, name: account!.name };
}

export async function listAccounts(db: Db) {
  const rows = await db.select().from(accounts).orderBy(asc(accounts.createdAt), asc(accounts.id));
  return rows.map((row) => ({ id: row.id, name: row.name, isDefault: row.isDefault, createdAt: row.createdAt.toISOString() }));
}

const toProductView = (product: Product) => ({
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

const toTokenView = (token: AccessToken) => ({
  id: token.id,
  name: token.name,
  scopes: token.scopes,
  productIds: token.productIds,
  accountId: token.accountId,
  createdAt: token.createdAt.toISOString(),
  expiresAt: token.expiresAt ? token.expiresAt.toISOString() : null,
});

export interface CreateTokenInput {
  name: string;
  accountId?: string;
  scopes?: string[];
  productIds?: string[] | null;
  expiresAt?: Date;
}

/** Creates an access token; the secret is returned here once and only its hash is stored. */
export async function createAccessToken(db: Db, input: CreateTokenInput) {
  const scopes = input.scopes ?? [...SCOPES];
  if (scopes.length === 0 || scopes.some((scope) => !(SCOPES as readonly string[]).includes(scope))) {
    throw Errors.invalidField('scopes');
  }
  if (input.expiresAt !== undefined && input.expiresAt.getTime() <= Date.now()) throw Errors.invalidField('expiresAt');
  const productIds = input.productIds == null ? null : [...new Set(input.productIds)];
  if (productIds !== null && productIds.length === 0) throw Errors.invalidField('productIds');
  return db.transaction(async (tx) => {
    const accountId = await resolveAccountId(tx, input.accountId);
    if (productIds !== null) {
      const found = await tx
        .select({ id: products.id })
        .from(products)
        .where(and(eq(products.accountId, accountId), inArray(products.id, productIds)));
      if (found.length !== productIds.length) throw Errors.productNotFound();
    }
    const token = newAccessToken();
    const [row] = await tx
      .insert(accessTokens)
      .values({
        id: newId(),
        accountId,
        name: input.name,
        tokenHash: sha256Hex(token),
        scopes: [...new Set(scopes)],
        productIds,
        expiresAt: input.expiresAt ?? null,
      })
      .returning();
    const { expiresAt: _expiresAt, ...view } = toTokenView(row!);
    return { ...view, token };
  });
}

export async function listAccessTokens(db: Db, accountId: string | undefined) {
  const account = await resolveAccountId(db, accountId);
  const rows = await db
    .select()
    .from(accessTokens)
    .where(and(eq(accessTokens.accountId, account), isNull(accessTokens.revokedAt)))
    .orderBy(asc(accessTokens.createdAt), asc(accessTokens.id));
  return rows.map(toTokenView);
}

export async function revokeAccessToken(db: Db, id: string) {
  const [row] = await db
    .update(accessTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(accessTokens.id, id), isNull(accessTokens.revokedAt)))
    .returning({ id: accessTokens.id });
  if (!row) throw Errors.tokenNotFound();
}
