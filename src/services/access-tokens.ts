import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { accessTokens } from '../db/schema/index.js';
import { sha256Hex } from '../lib/ids.js';
import type { AuthContext } from '../lib/scopes.js';

/**
 * Resolves a presented access token by its SHA-256. Revoked and expired tokens resolve to
 * nothing. Looked up on every request, never cached, so a revocation takes effect at once
 * in every process.
 */
export function createTokenResolver(db: Db) {
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

  return async (token: string): Promise<AuthContext | undefined> => {
    if (!token.startsWith('at_') || token.length > 512) return undefined;
    const [row] = await lookup.execute({ hash: sha256Hex(token) });
    if (!row || row.revokedAt !== null) return undefined;
    if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()) return undefined;
    return {
      tokenId: row.id,
      accountId: row.accountId,
      scopes: new Set(row.scopes),
      productIds: row.productIds,
    };
  };
}
