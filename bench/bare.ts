/**
 * The bare route: the reference that `npm run bench` measures keymint-server's CPU per request
 * against. A minimal Fastify + postgres.js process exposing POST /create-key, GET /key and
 * POST /key/activate, each running the same logical SQL as the benchmark's pgbench scripts
 * (bench/run.ts): the token lookup by hash, then the work. No validation, no authentication
 * plugin, no logger, no metrics, no rate limit, no security headers: what is left is Fastify's
 * routing and JSON, and postgres.js's round trips.
 *
 * Started by bench/run.ts as `node --import tsx bench/bare.ts` with DATABASE_URL, PORT and
 * DB_POOL_SIZE (the server's default pool, 10); GET /readyz answers once it listens.
 */
import { createHash, randomBytes } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import postgres from 'postgres';

const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.DB_POOL_SIZE ?? 10),
  onnotice: () => {},
});
const app = Fastify({ logger: false });

interface Token {
  id: string;
  account_id: string;
  scopes: string[];
  product_ids: string[] | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}

/** The token lookup every request starts with; answers 401 itself and returns undefined. */
async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<Token | undefined> {
  const header = request.headers.authorization ?? '';
  const hash = createHash('sha256').update(header.slice(7)).digest('hex');
  const [token] = await sql<Token[]>`
    select id, account_id, scopes, product_ids, expires_at, revoked_at from access_tokens where token_hash = ${hash}`;
  if (!token || token.revoked_at !== null || (token.expires_at !== null && token.expires_at.getTime() <= Date.now())) {
    reply.code(401).send({ code: 1, message: 'Unauthorized' });
    return undefined;
  }
  return token;
}

const newId = () => randomBytes(16).toString('base64url').slice(0, 22);
const newKey = () => {
  const raw = randomBytes(15).toString('hex').toUpperCase();
  return `${raw.slice(0, 5)}-${raw.slice(5, 10)}-${raw.slice(10, 15)}-${raw.slice(15, 20)}`;
};

interface CreateKeyBody {
  productId: string;
  usesPerKey?: string;
}

// The token lookup, then one INSERT … SELECT checking the product (and the customer) and
// inserting the key: bench/run.ts CREATE_KEY_SQL.
app.post('/create-key', async (request, reply) => {
  const token = await authenticate(request, reply);
  if (!token) return reply;
  const body = request.body as CreateKeyBody;
  const maxActivations = body.usesPerKey === undefined ? null : Number(body.usesPerKey);
  const expiresAt = new Date(Date.now() + 30 * 86_400_000);
  const [row] = await sql`
    insert into license_keys (id, account_id, product_id, key, max_activations, expires_at, customer_id, metadata,
        allowed_hosts, license_type, max_concurrent_sessions, heartbeat_interval, session_lease_duration, blocked,
        created_at, updated_at)
      select cast(${newId()} as text), products.account_id, products.id, cast(${newKey()} as text),
        cast(${maxActivations} as integer), cast(${expiresAt} as timestamptz), customers.id, cast(null as jsonb),
        cast(null as text[]), cast('node-locked' as text), cast(null as integer), cast(300 as integer),
        cast(900 as integer), false, now(), now()
      from products left join customers on (customers.id = null and customers.account_id = products.account_id)
      where products.id = ${body.productId} and products.account_id = ${token.account_id} and products.active = true
        and (cast(null as text) is null or customers.id is not null)
      on conflict (product_id, key) do nothing
      returning key`;
  if (!row) return reply.code(404).send({ code: 1, message: 'Product not found or inactive' });
  return { code: 0, key: row.key };
});

// The token lookup, the key with its customer, and its devices: bench/run.ts GET_KEY_SQL.
app.get('/key', async (request, reply) => {
  const token = await authenticate(request, reply);
  if (!token) return reply;
  const query = request.query as { productId: string; licenseKey: string };
  const [row] = await sql`
    select license_keys.*, customers.name as customer_name, customers.email as customer_email,
        customers.active as customer_active
      from license_keys inner join products on products.id = license_keys.product_id
      left join customers on customers.id = license_keys.customer_id
      where license_keys.product_id = ${query.productId} and license_keys.key = ${query.licenseKey}
        and license_keys.account_id = ${token.account_id} and products.active = true
      limit 1`;
  if (!row) return reply.code(404).send({ code: 1, message: 'License key not found' });
  const devices = await sql`
    select * from devices where license_key_id = ${row.id} order by activated_at, id`;
  return {
    code: 0,
    data: {
      license: {
        id: row.id,
        key: row.key,
        productId: row.product_id,
        maxActivations: row.max_activations,
        activations: devices.length,
        activated: devices.length > 0,
        expirationDate: row.expires_at ? row.expires_at.toISOString() : null,
        metadata: row.metadata,
        allowedHosts: row.allowed_hosts,
        licenseType: row.license_type,
        blocked: row.blocked,
        devices: devices.map((device) => ({
          hostId: device.host_id,
          deviceTag: device.device_tag,
          ipAddress: device.ip_address,
          activationTime: device.activated_at.toISOString(),
        })),
      },
      customer: row.customer_id
        ? { id: row.customer_id, name: row.customer_name, email: row.customer_email, active: row.customer_active }
        : null,
    },
  };
});

interface ActivateBody {
  productId: string;
  licenseKey: string;
  hostId: string;
}

// The token lookup, then one transaction: the key row locked FOR UPDATE and the device inserted
// unless its host is already there: bench/run.ts ACTIVATE_SQL.
app.post('/key/activate', async (request, reply) => {
  const token = await authenticate(request, reply);
  if (!token) return reply;
  const body = request.body as ActivateBody;
  const key = await sql.begin(async (tx) => {
    const [locked] = await tx`
      select license_keys.* from license_keys inner join products on products.id = license_keys.product_id
        where license_keys.product_id = ${body.productId} and license_keys.key = ${body.licenseKey}
          and license_keys.account_id = ${token.account_id} and products.active = true
        limit 1 for update of license_keys`;
    if (!locked) return undefined;
    await tx`
      insert into devices (id, license_key_id, host_id, device_tag, ip_address, activated_at)
        values (${newId()}, ${locked.id}, ${body.hostId}, null, ${request.ip}, now())
        on conflict (license_key_id, host_id) do nothing returning id`;
    return locked;
  });
  if (!key) return reply.code(404).send({ code: 1, message: 'License key not found' });
  return {
    code: 0,
    message: 'License valid',
    licenseeName: null,
    licenseeEmail: null,
    hostId: body.hostId,
    expirationDate: key.expires_at ? key.expires_at.toISOString() : null,
    metadata: key.metadata,
    allowedHosts: key.allowed_hosts,
  };
});

app.get('/readyz', async () => ({ status: 'ok' }));

const close = async () => {
  await app.close();
  await sql.end({ timeout: 5 });
  process.exit(0);
};
process.once('SIGTERM', close);
process.once('SIGINT', close);

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
