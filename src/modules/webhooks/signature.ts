import { createHmac, randomBytes } from 'node:crypto';

/** A webhook's signing secret: `whsec_` + 32 random bytes in base64url (43 chars). */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;

/**
 * The `Keymint-Signature` header of one attempt (docs/api.md, "Webhooks"):
 * `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256 of "<t>.<body>">`, keyed with the UTF-8 bytes of
 * the whole secret string — what the SDKs' `verifyWebhookSignature` checks.
 */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${unixSeconds}.${body}`, 'utf8').digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}
