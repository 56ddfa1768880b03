import { readFileSync } from 'node:fs';

/** The server's version (package.json): the OpenAPI document's and the webhook User-Agent's. */
export const { version: serverVersion } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };
