import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import { createKey, createTenant } from '../../helpers/fixtures.js';
import { jwksOf, signFile } from './helpers.js';

/**
 * The verifier examples of README "Offline licenses", run as written: each JavaScript block of
 * that section is executed by Node (its `jose` import pointed at this checkout's copy, its base
 * URL at a listening test server) with `licenseToken` and `hostId` defined before it.
 */

const README = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const JOSE_URL = pathToFileURL(createRequire(import.meta.url).resolve('jose')).href;
const HOST_ID = 'host-7f3a';

function verifierBlocks(): string[] {
  const section = /\n## Offline licenses\n([\s\S]*?)\n## /.exec(README)?.[1] ?? '';
  return [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

const t = useTestApp();
let baseUrl: string;
let workDir: string;

beforeAll(async () => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  workDir = mkdtempSync(join(tmpdir(), 'keymint-readme-'));
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function runBlock(block: string, licenseToken: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const code =
    `const licenseToken = ${JSON.stringify(licenseToken)};\nconst hostId = ${JSON.stringify(HOST_ID)};\n` +
    block.replaceAll("from 'jose'", `from ${JSON.stringify(JOSE_URL)}`).replaceAll('http://127.0.0.1:3000', baseUrl);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '--eval', code],
      { cwd: workDir, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('README "Offline licenses": the verifier examples', () => {
  it('has the two examples: createRemoteJWKSet + jwtVerify, and createLocalJWKSet from a saved jwks.json', () => {
    const blocks = verifierBlocks();
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toContain('createRemoteJWKSet(new URL(');
    expect(blocks[0]).toContain('http://127.0.0.1:3000/.well-known/jwks.json');
    expect(blocks[1]).toContain("createLocalJWKSet(JSON.parse(readFileSync('jwks.json'");
    for (const block of blocks) expect(block).toContain('jwtVerify(licenseToken, JWKS');
  });

  it('both accept a file signed by the server, and refuse a tampered one or one for another machine', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    const file = await signFile(tenant, key, { hostId: HOST_ID, ttl: 86_400 });
    const other = await signFile(tenant, key, { hostId: 'another-machine', ttl: 86_400 });
    // As the README says: curl -s $BASE/.well-known/jwks.json > jwks.json
    writeFileSync(join(workDir, 'jwks.json'), JSON.stringify(await jwksOf(t.app)));

    const [head, claims, signature] = file.licenseToken.split('.') as [string, string, string];
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] = bytes[0]! ^ 0x01;
    const tampered = `${head}.${claims}.${bytes.toString('base64url')}`;

    for (const block of verifierBlocks()) {
      const accepted = await runBlock(block, file.licenseToken);
      expect(accepted, accepted.stderr).toMatchObject({ code: 0 });
      const exp = new Date(decodeJwt(file.licenseToken).exp! * 1000).toISOString();
      expect(accepted.stdout).toBe(`licensed: ${key} until ${exp}\n`);

      const refused = await runBlock(block, tampered);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('signature verification failed');
      const elsewhere = await runBlock(block, other.licenseToken);
      expect(elsewhere.code).not.toBe(0);
      expect(elsewhere.stderr).toContain('not a license file for this machine');
    }
  });
});
