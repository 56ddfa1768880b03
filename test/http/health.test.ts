import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { client, ERRORS, expectError } from '../helpers/fixtures.js';

const t = useTestApp();

describe('operations endpoints', () => {
  it('GET /healthz answers without auth', async () => {
    const response = await client(t.app).get('/healthz');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ code: 0, status: 'ok' });
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('GET /readyz checks the database', async () => {
    const response = await client(t.app).get('/readyz');
    expect(response.body).toEqual({ code: 0, status: 'ready' });
  });

  it('unknown paths and methods answer 404 Not found', async () => {
    expectError(await client(t.app).get('/nope'), ERRORS.notFound);
    expectError(await client(t.app).send('DELETE', '/healthz'), ERRORS.notFound);
    expectError(await client(t.app).get('/key/'), ERRORS.notFound);
    expectError(await client(t.app).get('/KEY'), ERRORS.notFound);
  });

  it('echoes a request id header', async () => {
    const response = await client(t.app).get('/healthz');
    expect(response.headers['x-request-id']).toBeTruthy();
  });
});
