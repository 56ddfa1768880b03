import { asc, eq } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { accounts } from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';

/** Accounts (tenants): shared by the admin API and the CLI. */

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

export async function renameAccount(db: Db, id: string, name: string) {
  const [account] = await db.update(accounts).set({ name }).where(eq(accounts.id, id)).returning();
  if (!account) throw Errors.accountNotFound();
  return { id: account.id, name: account.name };
}

export async function listAccounts(db: Db) {
  const rows = await db.select().from(accounts).orderBy(asc(accounts.createdAt), asc(accounts.id));
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    isDefault: row.isDefault,
    createdAt: row.createdAt.toISOString(),
  }));
}
