import { BackupError, decodeBackup } from './archive.js';

/**
 * Online backup: asks a running server for a snapshot (`GET /admin/backup`) and checks the
 * whole file it sent before it is written anywhere.
 */
export async function downloadBackup(baseUrl: string, adminToken: string | undefined): Promise<Buffer> {
  if (!adminToken) throw new BackupError('ADMIN_TOKEN must be set (the server’s admin token) to back up with --url');
  let url: URL;
  try {
    url = new URL('admin/backup', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  } catch {
    throw new BackupError(`--url must be the server's base URL, e.g. http://127.0.0.1:3000 (got ${baseUrl})`);
  }
  let response: Response;
  try {
    response = await fetch(url, { headers: { authorization: `Bearer ${adminToken}` } });
  } catch (err) {
    throw new BackupError(`Cannot reach ${url.origin}: ${(err as Error & { cause?: Error }).cause?.message ?? err}`);
  }
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200) {
    let message = body.toString('utf8').slice(0, 500);
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      // Not the envelope: shown as sent.
    }
    throw new BackupError(`${url.href} answered ${response.status}: ${message}`);
  }
  decodeBackup(body);
  return body;
}
