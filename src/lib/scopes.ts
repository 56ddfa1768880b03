export const SCOPES = [
  'customers:read',
  'customers:write',
  'customers:delete',
  'licenses:read',
  'licenses:write',
  'licenses:activate',
  'licenses:block',
] as const;

export type Scope = (typeof SCOPES)[number];

/** Who is calling a public endpoint: resolved from the access token on every request. */
export interface AuthContext {
  tokenId: string;
  accountId: string;
  scopes: ReadonlySet<string>;
  /** null = every product of the account. */
  productIds: readonly string[] | null;
}

export const canSeeProduct = (auth: AuthContext, productId: string): boolean =>
  auth.productIds === null || auth.productIds.includes(productId);
