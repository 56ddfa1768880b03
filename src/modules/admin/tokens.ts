import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { type AccessToken, accessTokens, products } from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import { sha256Hex } from '../../lib/hashing.js';
import { newAccessToken, newId } from '../../lib/ids.js';
import { type AuthContext, SCOPES } from '../../lib/scopes.js';
import { resolveAccountId } from './accounts.js';
import type { TokenView } from './schemas.js';
import type { ResolvedToken, TokenCache } from './token-cache.js';

/** Access tokens: created and revoked by the admin API and the CLI, resolved on every request. */

const toTokenView = (token: AccessToken): TokenView => ({
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
export async function createAccessToken(tx: Db, input: CreateTokenInput) {
  const scopes = input.scopes ?? [...SCOPES];
  if (scopes.length === 0 || scopes.some((scope) => !(SCOPES as readonly string[]).includes(scope))) {
    throw Errors.invalidField('scopes');
  }
  if (input.expiresAt !== undefined && input.expiresAt.getTime() <= Date.now()) throw Errors.invalidField('expiresAt');
  const productIds = input.productIds == null ? null : [...new Set(input.productIds)];
  if (productIds !== null && productIds.length === 0) throw Errors.invalidField('productIds');
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

/**
 * Resolves a presented access token by its SHA-256. Revoked and expired tokens resolve to
 * nothing. With a `cache` (TokenCache: emptied by every change to a token row, in every process),
 * a token resolved before costs no database round trip; its expiry is checked on every use.
 */
export function createTokenResolver(db: Db, cache?: TokenCache) {
  const lookup = db
    .select({
      id: accessTokens.id,
      accountId: accessTokens.accountId,
      scopes: accessTokens.scopes,
      productIds: accessTokens.productIds,
      expiresAt: accessTokens.expiresAt,
      revokedAt: accessTokens.revokedAt,
    })
    .from(accessTokens)
    .where(eq(accessTokens.tokenHash, sql.placeholder('hash')))
    .prepare('access_token_by_hash');

  const usable = (token: ResolvedToken | undefined, now: number) =>
    token !== undefined && (token.expiresAt === null || token.expiresAt > now) ? token.auth : undefined;

  return async (token: string): Promise<AuthContext | undefined> => {
    if (!token.startsWith('at_') || token.length > 512) return undefined;
    const hash = sha256Hex(token);
    const cached = cache?.get(hash, Date.now());
    if (cached !== undefined) return usable(cached, Date.now());
    const epoch = cache?.epoch ?? 0;
    const [row] = await lookup.execute({ hash });
    if (!row || row.revokedAt !== null) return undefined;
    const resolved: ResolvedToken = {
      auth: { tokenId: row.id, accountId: row.accountId, scopes: new Set(row.scopes), productIds: row.productIds },
      expiresAt: row.expiresAt?.getTime() ?? null,
    };
    const now = Date.now();
    cache?.set(hash, resolved, epoch, now);
    return usable(resolved, now);
  };
}
