import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * The SSRF guard of webhook URLs (docs/api.md, "Webhooks"): a URL whose host is, or resolves to,
 * a loopback, link-local, private or otherwise non-public address is refused unless
 * WEBHOOKS_ALLOW_PRIVATE=true. Checked when a webhook is registered and again on every delivery,
 * where the check runs inside the connection's DNS lookup, so the address connected to is the
 * address checked (no rebinding between check and connect).
 */

const nonPublic = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local (cloud metadata endpoints)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  nonPublic.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128],
  ['64:ff9b::', 96], // NAT64 of IPv4 addresses
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  nonPublic.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is one a webhook must not reach (IPv4-mapped IPv6 is judged as IPv4). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return nonPublic.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** The host of a URL as an IP literal (IPv6 without its brackets), or undefined for a name. */
function ipLiteral(url: URL): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? undefined : host;
}

function hasSpaceControlOrBackslash(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const char = raw.charCodeAt(i);
    if (char <= 0x20 || char === 0x7f || char === 0x5c) return true;
  }
  return false;
}

/**
 * The shape of a webhook URL, decidable without the network: `http://` or `https://` and a
 * host, at most 2048 chars, nothing the URL parser would silently strip or rewrite (spaces,
 * control characters, backslashes) and nothing PostgreSQL cannot store.
 */
export function isWebhookUrlSyntax(raw: string): boolean {
  if (raw.length > MAX_WEBHOOK_URL_LENGTH || !raw.isWellFormed() || hasSpaceControlOrBackslash(raw)) return false;
  if (!/^https?:\/\//i.test(raw) || !URL.canParse(raw)) return false;
  return new URL(raw).hostname !== '';
}

/**
 * A webhook URL as registered: of the right shape (isWebhookUrlSyntax) and — unless private
 * addresses are allowed — every address its host resolves to is public. false when refused (an
 * unresolvable host included).
 */
export async function checkWebhookUrl(raw: string, allowPrivate: boolean): Promise<boolean> {
  if (!isWebhookUrlSyntax(raw)) return false;
  if (allowPrivate) return true;
  const url = new URL(raw);
  const literal = ipLiteral(url);
  if (literal !== undefined) return !isNonPublicAddress(literal);
  try {
    const addresses = await lookup(url.hostname, { all: true, verbatim: true });
    return addresses.length > 0 && addresses.every((entry) => !isNonPublicAddress(entry.address));
  } catch {
    return false;
  }
}

export class BlockedAddressError extends Error {
  readonly code = 'EBLOCKEDADDRESS';
  constructor(host: string) {
    super(`${host} resolves to a non-public address`);
    this.name = 'BlockedAddressError';
  }
}

/** Refuses, before connecting, a delivery URL whose host is a non-public IP literal. */
export function assertDeliverable(url: URL, allowPrivate: boolean): void {
  const literal = ipLiteral(url);
  if (!allowPrivate && literal !== undefined && isNonPublicAddress(literal))
    throw new BlockedAddressError(url.hostname);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * The `lookup` of a delivery's connection (node:http's option): resolves as usual and fails the
 * connection when an address is non-public.
 */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const list = addresses as LookupAddress[];
    if (list.length === 0 || list.some((entry) => isNonPublicAddress(entry.address))) {
      return callback(new BlockedAddressError(hostname), []);
    }
    if (options.all) return callback(null, list);
    const first = list[0]!;
    callback(null, first.address, first.family);
  });
}
