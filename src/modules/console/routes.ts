import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import { withTransaction } from '../../db/unit-of-work.js';
import { toAppError } from '../../http/errors.js';
import { compileValidator } from '../../http/validation.js';
import { parseIsoDate } from '../../lib/dates.js';
import type { AppError } from '../../lib/errors.js';
import { Errors } from '../../lib/errors.js';
import { WEBHOOK_EVENT_TYPES } from '../../lib/events.js';
import { matchesSecretDigest, sha256 } from '../../lib/hashing.js';
import { type AuthContext, SCOPES } from '../../lib/scopes.js';
import { createAccount, listAccounts, renameAccount, resolveAccountId } from '../admin/accounts.js';
import { createProduct, listProducts, updateProduct } from '../admin/products.js';
import { CreateAccountBodySchema as CreateAccountBody, CreateTokenBodySchema } from '../admin/schemas.js';
import { createAccessToken, listAccessTokens, revokeAccessToken } from '../admin/tokens.js';
import { CreateCustomerBodySchema, UpdateCustomerBodySchema } from '../customers/schemas.js';
import {
  createCustomer,
  deleteCustomer,
  getCustomerWithKeys,
  toggleCustomerActive,
  updateCustomer,
} from '../customers/service.js';
import { SignBodySchema } from '../license-files/schemas.js';
import { signLicenseFile } from '../license-files/service.js';
import { recordKeysCreated } from '../licenses/metrics.js';
import { CreateKeyBodySchema, UpdateKeyBodySchema } from '../licenses/schemas.js';
import {
  createLicenseKeys,
  deactivateLicenseKey,
  planKeyCreation,
  setLicenseKeyBlocked,
  updateLicenseKey,
} from '../licenses/service.js';
import {
  checkNewWebhook,
  createWebhook,
  deleteWebhook,
  listDeliveries,
  listWebhooks,
  retryDelivery,
} from '../webhooks/admin.js';
import { CreateWebhookBodySchema } from '../webhooks/schemas.js';
import {
  countCustomerKeys,
  dailyCounts,
  findKeyId,
  keyDetails,
  overviewTotals,
  PAGE_SIZE,
  searchCustomers,
  searchKeys,
} from './queries.js';

type Form = Record<string, string | string[] | undefined>;

export interface ConsoleRoutesOptions {
  adminToken: string;
  signIns: Counter<'outcome'>;
  actions: Counter<'action' | 'outcome'>;
}

/** The field a refusal concerns, so the page shows its message next to that field. */
const FIELD_OF_REASON: Partial<Record<AppError['reason'], string>> = {
  customer_email_conflict: 'email',
  product_not_found: 'productId',
  product_not_found_or_inactive: 'productId',
  activation_limit_mismatch: 'maxActivations',
  customer_not_found: 'customerId',
  ttl_required: 'ttl',
  both_customer_fields: 'customerId',
};

/** A refusal (4xx) as the form shows it; anything else is not the form's to show. */
function formError(err: unknown): { status: number; message: string; errors: Record<string, string> } | undefined {
  const appError = err instanceof Error ? toAppError(err) : undefined;
  if (!appError || appError.statusCode >= 500) return undefined;
  const field =
    appError.reason === 'invalid_field'
      ? appError.message.slice('Invalid '.length).split('.')[0]
      : FIELD_OF_REASON[appError.reason];
  return { status: appError.statusCode, message: appError.message, errors: field ? { [field]: appError.message } : {} };
}

/** The API's own validation of a body built from a form: the same rules, the same messages. */
const validators = new Map<TSchema, ReturnType<typeof compileValidator>>();
function validated<T>(schema: TSchema, body: Record<string, unknown>): T {
  let validate = validators.get(schema);
  if (!validate) {
    validate = compileValidator(schema, 'body');
    validators.set(schema, validate);
  }
  const result = validate(body);
  if ('error' in result) throw result.error;
  return result.value as T;
}

const text = (form: Form, name: string): string | undefined => {
  const value = form[name];
  const first = Array.isArray(value) ? value[0] : value;
  const trimmed = first?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
};
const list = (form: Form, name: string): string[] => {
  const value = form[name];
  return value === undefined ? [] : (Array.isArray(value) ? value : [value]).filter((item) => item !== '');
};
/** A whole number typed in a field; anything else goes to the validator as typed. */
const integer = (value: string | undefined): number | string | undefined =>
  value !== undefined && /^\d{1,12}$/.test(value) ? Number(value) : value;
/** `<input type="date">` gives a day: the key lasts through its end (UTC). */
const endOfDay = (value: string | undefined): string | undefined =>
  value !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T23:59:59.999Z` : value;
const json = (value: string | undefined, field: string): unknown => {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    throw Errors.invalidField(field);
  }
};
const hosts = (value: string | undefined) =>
  value
    ?.split(/[;\n]/)
    .map((host) => host.trim())
    .filter((host) => host !== '');
const page = (value: unknown): number => {
  const number = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : 1;
  return number >= 1 ? number : 1;
};
const pager = (current: number, total: number) => ({
  page: current,
  totalPages: Math.max(1, Math.ceil(total / PAGE_SIZE)),
  total,
});

/** The console acts as the admin on the account being viewed: every scope, every product. */
const adminAuth = (accountId: string): AuthContext => ({
  tokenId: 'console',
  accountId,
  scopes: new Set(SCOPES),
  productIds: null,
});

export async function consoleRoutes(app: FastifyInstance, options: ConsoleRoutesOptions) {
  const db = app.database.db;
  const adminDigest = sha256(options.adminToken);
  const { allowPrivate } = app.config.webhooks;

  /** The account being viewed: the session's, or the default one (also when the session's is gone). */
  async function accountOf(request: FastifyRequest) {
    const chosen = request.session.get('accountId');
    let id: string;
    try {
      id = await resolveAccountId(db, chosen);
    } catch {
      id = await resolveAccountId(db, undefined);
    }
    const accounts = await listAccounts(db);
    return { id, accounts, current: accounts.find((account) => account.id === id)! };
  }

  /** Runs a form's action; a refusal renders the form's page again with the messages. */
  async function submit(
    request: FastifyRequest,
    reply: FastifyReply,
    action: string,
    run: () => Promise<unknown>,
    again: (
      failure: { message: string; errors: Record<string, string>; values: Form },
      status: number,
    ) => Promise<unknown>,
  ) {
    try {
      const result = await run();
      options.actions.inc({ action, outcome: 'ok' });
      return result;
    } catch (err) {
      const failure = formError(err);
      if (!failure) throw err;
      options.actions.inc({ action, outcome: 'refused' });
      return again({ message: failure.message, errors: failure.errors, values: request.body as Form }, failure.status);
    }
  }

  // --- Signing in and out -------------------------------------------------------------------

  app.get('/sign-in', { config: { consolePublic: true } }, async (_request, reply) =>
    reply.page('sign-in', { title: 'Sign in', errors: {} }),
  );

  app.post('/sign-in', { config: { consolePublic: true } }, async (request, reply) => {
    const token = text(request.body as Form, 'token');
    if (token === undefined || !matchesSecretDigest(token, adminDigest)) {
      options.signIns.inc({ outcome: 'failure' });
      return reply.page('sign-in', { title: 'Sign in', errors: { token: 'Invalid access token' } }, 401);
    }
    options.signIns.inc({ outcome: 'success' });
    // A new session: nothing of the signed-out one (its CSRF secret) carries over.
    request.session.regenerate();
    request.session.set('signedIn', true);
    return reply.redirect('/console', 303);
  });

  app.post('/sign-out', async (request, reply) => {
    request.session.delete();
    return reply.redirect('/console/sign-in', 303);
  });

  // --- Overview -------------------------------------------------------------------------------

  app.get('/', async (request, reply) => {
    const account = await accountOf(request);
    const [totals, days] = await Promise.all([overviewTotals(db, account.id), dailyCounts(db, account.id, 30)]);
    return reply.page('overview', { title: 'Overview', account, totals, days });
  });

  // --- Accounts and products ------------------------------------------------------------------

  const accountsPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) =>
    reply.page('accounts', { title: 'Accounts', account: await accountOf(request), errors: {}, ...form }, status);
  app.get('/accounts', (request, reply) => accountsPage(request, reply));
  app.post('/accounts', async (request, reply) =>
    submit(
      request,
      reply,
      'account.create',
      async () => {
        const { name } = validated<{ name: string }>(CreateAccountBody, { name: text(request.body as Form, 'name') });
        await withTransaction(db, (tx) => createAccount(tx, name), request.deadline);
        return reply.redirect('/console/accounts', 303);
      },
      (failure, status) => accountsPage(request, reply, failure, status),
    ),
  );
  app.post<{ Params: { id: string } }>('/accounts/:id', async (request, reply) =>
    submit(
      request,
      reply,
      'account.rename',
      async () => {
        const { name } = validated<{ name: string }>(CreateAccountBody, { name: text(request.body as Form, 'name') });
        await withTransaction(db, (tx) => renameAccount(tx, request.params.id, name), request.deadline);
        return reply.redirect('/console/accounts', 303);
      },
      (failure, status) => accountsPage(request, reply, { ...failure, failedId: request.params.id }, status),
    ),
  );
  app.post<{ Params: { id: string } }>('/accounts/:id/select', async (request, reply) => {
    request.session.set('accountId', await resolveAccountId(db, request.params.id));
    return reply.redirect('/console', 303);
  });

  const productsPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const products = await listProducts(db, account.id);
    return reply.page('products', { title: 'Products', account, products, errors: {}, ...form }, status);
  };
  app.get('/products', (request, reply) => productsPage(request, reply));
  app.post('/products', async (request, reply) =>
    submit(
      request,
      reply,
      'product.create',
      async () => {
        const account = await accountOf(request);
        const { name } = validated<{ name: string }>(CreateAccountBody, { name: text(request.body as Form, 'name') });
        await withTransaction(db, (tx) => createProduct(tx, { name, accountId: account.id }), request.deadline);
        return reply.redirect('/console/products', 303);
      },
      (failure, status) => productsPage(request, reply, failure, status),
    ),
  );
  app.post<{ Params: { id: string } }>('/products/:id', async (request, reply) =>
    submit(
      request,
      reply,
      'product.update',
      async () => {
        const form = request.body as Form;
        const { name } = validated<{ name: string }>(CreateAccountBody, { name: text(form, 'name') });
        const account = await accountOf(request);
        const products = await listProducts(db, account.id);
        if (!products.some((product) => product.id === request.params.id)) throw Errors.productNotFound();
        await withTransaction(
          db,
          (tx) => updateProduct(tx, request.params.id, { name, active: text(form, 'active') === 'on' }),
          request.deadline,
        );
        return reply.redirect('/console/products', 303);
      },
      (failure, status) => productsPage(request, reply, { ...failure, failedId: request.params.id }, status),
    ),
  );

  // --- Access tokens --------------------------------------------------------------------------

  const tokensPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const [tokens, products] = await Promise.all([listAccessTokens(db, account.id), listProducts(db, account.id)]);
    return reply.page(
      'tokens',
      { title: 'Access tokens', account, tokens, products, scopes: SCOPES, errors: {}, ...form },
      status,
    );
  };
  app.get('/tokens', (request, reply) => tokensPage(request, reply));
  app.post('/tokens', async (request, reply) =>
    submit(
      request,
      reply,
      'token.create',
      async () => {
        const form = request.body as Form;
        const account = await accountOf(request);
        const productIds = list(form, 'productIds');
        const body = validated<{ name: string; scopes: string[]; productIds: string[] | null; expiresAt?: string }>(
          CreateTokenBodySchema,
          {
            name: text(form, 'name'),
            scopes: list(form, 'scopes'),
            productIds: productIds.length > 0 ? productIds : null,
            expiresAt: endOfDay(text(form, 'expiresAt')),
          },
        );
        const token = await withTransaction(
          db,
          (tx) =>
            createAccessToken(tx, {
              ...body,
              accountId: account.id,
              expiresAt: body.expiresAt === undefined ? undefined : parseIsoDate(body.expiresAt),
            }),
          request.deadline,
        );
        // Shown on this answer only (no-store); the database keeps its hash.
        return reply.page('secret', {
          title: 'Token created',
          account,
          heading: `Access token "${token.name}" created`,
          secret: token.token,
          note: 'Copy it now: it is stored only as a hash and will not be shown again.',
          back: '/console/tokens',
        });
      },
      (failure, status) => tokensPage(request, reply, failure, status),
    ),
  );
  app.post<{ Params: { id: string } }>('/tokens/:id/revoke', async (request, reply) => {
    const account = await accountOf(request);
    const tokens = await listAccessTokens(db, account.id);
    if (!tokens.some((token) => token.id === request.params.id)) throw Errors.tokenNotFound();
    const notified = app.tokenCache?.notified(request.params.id, 1000);
    await withTransaction(db, (tx) => revokeAccessToken(tx, request.params.id), request.deadline);
    await notified;
    options.actions.inc({ action: 'token.revoke', outcome: 'ok' });
    return reply.redirect('/console/tokens', 303);
  });

  // --- License keys ---------------------------------------------------------------------------

  const keysPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const query = request.query as Record<string, string | undefined>;
    const search = { q: query.q?.trim() || undefined, productId: query.product || undefined, page: page(query.page) };
    const [products, found] = await Promise.all([listProducts(db, account.id), searchKeys(db, account.id, search)]);
    return reply.page(
      'keys',
      {
        title: 'License keys',
        account,
        products,
        search,
        keys: found.rows,
        pager: pager(search.page, found.total),
        errors: {},
        ...form,
      },
      status,
    );
  };
  app.get('/keys', (request, reply) => keysPage(request, reply));
  app.post('/keys', async (request, reply) =>
    submit(
      request,
      reply,
      'key.create',
      async () => {
        const form = request.body as Form;
        const account = await accountOf(request);
        const customerName = text(form, 'customerName');
        const customerEmail = text(form, 'email');
        const format = {
          prefix: text(form, 'prefix'),
          sections: integer(text(form, 'sections')),
          sectionLength: integer(text(form, 'sectionLength')),
          separator: text(form, 'separator'),
          case: text(form, 'case'),
        };
        const body = validated<Parameters<typeof planKeyCreation>[1]>(CreateKeyBodySchema, {
          productId: text(form, 'productId'),
          maxActivations: integer(text(form, 'maxActivations')),
          expiryDate: endOfDay(text(form, 'expiryDate')),
          customerId: text(form, 'customerId'),
          newCustomer:
            customerName === undefined && customerEmail === undefined
              ? undefined
              : { name: customerName ?? '', email: customerEmail },
          metadata: json(text(form, 'metadata'), 'metadata'),
          allowedHosts: hosts(text(form, 'allowedHosts')),
          licenseType: text(form, 'licenseType'),
          maxConcurrentSessions: integer(text(form, 'maxConcurrentSessions')),
          format: Object.values(format).some((value) => value !== undefined) ? format : undefined,
          amountKeys: integer(text(form, 'amountKeys')),
        });
        const creation = planKeyCreation(adminAuth(account.id), body);
        const created = await app.commitChange(account.id, (tx) => createLicenseKeys(tx, creation), request.deadline);
        recordKeysCreated(created.keys.length);
        if (created.keys.length === 1) {
          const id = await findKeyId(db, account.id, body.productId, created.keys[0]!);
          return reply.redirect(`/console/keys/${id}`, 303);
        }
        return reply.page('keys-created', {
          title: 'Keys created',
          account,
          keys: created.keys,
          productId: body.productId,
        });
      },
      (failure, status) => keysPage(request, reply, failure, status),
    ),
  );

  type KeyParams = { Params: { id: string } };
  const keyPage = async (request: FastifyRequest<KeyParams>, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const details = await keyDetails(db, account.id, request.params.id);
    if (!details) throw Errors.licenseKeyNotFound();
    return reply.page('key', { title: details.key.key, account, ...details, errors: {}, ...form }, status);
  };
  /** The key of the URL as the API's services look it up, on the account being viewed. */
  const lookupOf = async (request: FastifyRequest<KeyParams>) => {
    const account = await accountOf(request);
    const details = await keyDetails(db, account.id, request.params.id);
    if (!details) throw Errors.licenseKeyNotFound();
    return { auth: adminAuth(account.id), lookup: { productId: details.key.productId, licenseKey: details.key.key } };
  };
  app.get<KeyParams>('/keys/:id', (request, reply) => keyPage(request, reply));
  const keyAction = (path: string, action: string, apply: (request: FastifyRequest<KeyParams>) => Promise<unknown>) =>
    app.post<KeyParams>(`/keys/:id/${path}`, async (request, reply) =>
      submit(
        request,
        reply,
        action,
        async () => {
          await apply(request);
          return reply.redirect(`/console/keys/${request.params.id}`, 303);
        },
        (failure, status) => keyPage(request, reply, failure, status),
      ),
    );
  keyAction('deactivate', 'key.deactivate', async (request) => {
    const { auth, lookup } = await lookupOf(request);
    const hostId = text(request.body as Form, 'hostId');
    await app.commitChange(
      auth.accountId,
      (tx) => deactivateLicenseKey(tx, auth, { ...lookup, hostId }),
      request.deadline,
    );
  });
  for (const blocked of [true, false]) {
    keyAction(blocked ? 'block' : 'unblock', blocked ? 'key.block' : 'key.unblock', async (request) => {
      const { auth, lookup } = await lookupOf(request);
      await app.commitChange(auth.accountId, (tx) => setLicenseKeyBlocked(tx, auth, lookup, blocked), request.deadline);
    });
  }
  keyAction('edit', 'key.update', async (request) => {
    const { auth, lookup } = await lookupOf(request);
    const form = request.body as Form;
    // An empty field clears the setting: no limit, no expiry, no metadata, any host.
    const body = validated<Parameters<typeof updateLicenseKey>[2]>(UpdateKeyBodySchema, {
      ...lookup,
      maxActivations: integer(text(form, 'maxActivations')) ?? null,
      expiryDate: endOfDay(text(form, 'expiryDate')) ?? null,
      metadata: json(text(form, 'metadata'), 'metadata') ?? null,
      allowedHosts: hosts(text(form, 'allowedHosts')) ?? null,
    });
    await app.commitChange(auth.accountId, (tx) => updateLicenseKey(tx, auth, body), request.deadline);
  });
  app.post<KeyParams>('/keys/:id/license-file', async (request, reply) =>
    submit(
      request,
      reply,
      'key.sign',
      async () => {
        const { auth, lookup } = await lookupOf(request);
        const form = request.body as Form;
        const body = validated<Parameters<typeof signLicenseFile>[3]>(SignBodySchema, {
          ...lookup,
          hostId: text(form, 'hostId'),
          ttl: integer(text(form, 'ttl')),
        });
        const file = await signLicenseFile(db, app.signingKeys, auth, body);
        const name = `license-${body.hostId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}.json`;
        return reply
          .header('content-disposition', `attachment; filename="${name}"`)
          .header('cache-control', 'no-store')
          .type('application/json; charset=utf-8')
          .send(JSON.stringify(file, null, 2));
      },
      (failure, status) => keyPage(request, reply, failure, status),
    ),
  );

  // --- Customers ------------------------------------------------------------------------------

  const customersPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const query = request.query as Record<string, string | undefined>;
    const search = { q: query.q?.trim() || undefined, page: page(query.page) };
    const found = await searchCustomers(db, account.id, search);
    return reply.page(
      'customers',
      {
        title: 'Customers',
        account,
        search,
        customers: found.rows,
        pager: pager(search.page, found.total),
        errors: {},
        ...form,
      },
      status,
    );
  };
  app.get('/customers', (request, reply) => customersPage(request, reply));
  app.post('/customers', async (request, reply) =>
    submit(
      request,
      reply,
      'customer.create',
      async () => {
        const form = request.body as Form;
        const account = await accountOf(request);
        const body = validated<{ name: string; email?: string }>(CreateCustomerBodySchema, {
          name: text(form, 'name'),
          email: text(form, 'email'),
        });
        const { customer } = await app.commitChange(
          account.id,
          (tx) => createCustomer(tx, account.id, body),
          request.deadline,
        );
        return reply.redirect(`/console/customers/${customer.id}`, 303);
      },
      (failure, status) => customersPage(request, reply, failure, status),
    ),
  );

  type CustomerParams = { Params: { id: string } };
  const customerPage = async (
    request: FastifyRequest<CustomerParams>,
    reply: FastifyReply,
    form = {},
    status = 200,
  ) => {
    const account = await accountOf(request);
    const { customer, licenseKeys } = await getCustomerWithKeys(db, adminAuth(account.id), request.params.id);
    const allKeys = await countCustomerKeys(db, customer.id);
    return reply.page(
      'customer',
      { title: customer.name, account, customer, licenseKeys, allKeys, errors: {}, ...form },
      status,
    );
  };
  app.get<CustomerParams>('/customers/:id', (request, reply) => customerPage(request, reply));
  app.post<CustomerParams>('/customers/:id', async (request, reply) =>
    submit(
      request,
      reply,
      'customer.update',
      async () => {
        const form = request.body as Form;
        const account = await accountOf(request);
        const body = validated<Parameters<typeof updateCustomer>[2]>(UpdateCustomerBodySchema, {
          customerId: request.params.id,
          name: text(form, 'name'),
          email: text(form, 'email') ?? null,
        });
        await app.commitChange(account.id, (tx) => updateCustomer(tx, account.id, body), request.deadline);
        return reply.redirect(`/console/customers/${request.params.id}`, 303);
      },
      (failure, status) => customerPage(request, reply, failure, status),
    ),
  );
  app.post<CustomerParams>('/customers/:id/toggle', async (request, reply) => {
    const account = await accountOf(request);
    await app.commitChange(
      account.id,
      (tx) => toggleCustomerActive(tx, account.id, request.params.id),
      request.deadline,
    );
    options.actions.inc({ action: 'customer.toggle', outcome: 'ok' });
    return reply.redirect(`/console/customers/${request.params.id}`, 303);
  });
  app.get<CustomerParams>('/customers/:id/delete', async (request, reply) => {
    const account = await accountOf(request);
    const { customer } = await getCustomerWithKeys(db, adminAuth(account.id), request.params.id);
    const keys = await countCustomerKeys(db, customer.id);
    return reply.page('customer-delete', { title: `Delete ${customer.name}`, account, customer, keys });
  });
  app.post<CustomerParams>('/customers/:id/delete', async (request, reply) => {
    const account = await accountOf(request);
    const auth = adminAuth(account.id);
    await app.commitChange(account.id, (tx) => deleteCustomer(tx, auth, request.params.id), request.deadline);
    options.actions.inc({ action: 'customer.delete', outcome: 'ok' });
    return reply.redirect('/console/customers', 303);
  });

  // --- Webhooks and signing keys --------------------------------------------------------------

  const webhooksPage = async (request: FastifyRequest, reply: FastifyReply, form = {}, status = 200) => {
    const account = await accountOf(request);
    const [webhooks, signingKeys] = await Promise.all([listWebhooks(db, account.id), app.signingKeys.list()]);
    return reply.page(
      'webhooks',
      { title: 'Webhooks', account, webhooks, signingKeys, eventTypes: WEBHOOK_EVENT_TYPES, errors: {}, ...form },
      status,
    );
  };
  /** A webhook of the account being viewed (another account's answers as none). */
  const ownWebhook = async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const account = await accountOf(request);
    const webhook = (await listWebhooks(db, account.id)).find((row) => row.id === request.params.id);
    if (!webhook) throw Errors.webhookNotFound();
    return { account, webhook };
  };
  app.get('/webhooks', (request, reply) => webhooksPage(request, reply));
  app.post('/webhooks', async (request, reply) =>
    submit(
      request,
      reply,
      'webhook.create',
      async () => {
        const form = request.body as Form;
        const account = await accountOf(request);
        const events = list(form, 'events');
        const body = validated<{ url: string; events?: string[] }>(CreateWebhookBodySchema, {
          url: text(form, 'url'),
          events: events.length > 0 ? events : undefined,
        });
        const checked = await checkNewWebhook({ ...body, accountId: account.id }, allowPrivate);
        const webhook = await withTransaction(db, (tx) => createWebhook(tx, checked), request.deadline);
        return reply.page('secret', {
          title: 'Webhook registered',
          account,
          heading: `Webhook ${webhook.url} registered`,
          secret: webhook.secret,
          note: 'Copy the signing secret now: it is not shown again. Deliveries carry its HMAC signature.',
          back: '/console/webhooks',
        });
      },
      (failure, status) => webhooksPage(request, reply, failure, status),
    ),
  );
  app.post<{ Params: { id: string } }>('/webhooks/:id/delete', async (request, reply) => {
    await ownWebhook(request);
    await withTransaction(db, (tx) => deleteWebhook(tx, request.params.id), request.deadline);
    options.actions.inc({ action: 'webhook.delete', outcome: 'ok' });
    return reply.redirect('/console/webhooks', 303);
  });
  app.get<{ Params: { id: string } }>('/webhooks/:id', async (request, reply) => {
    const { account, webhook } = await ownWebhook(request);
    const current = page((request.query as Record<string, string | undefined>).page);
    const deliveries = await listDeliveries(db, webhook.id, { page: current, limit: PAGE_SIZE });
    return reply.page('webhook', {
      title: webhook.url,
      account,
      webhook,
      deliveries: deliveries.data,
      pager: pager(current, deliveries.meta.total),
    });
  });
  app.post<{ Params: { id: string; deliveryId: string } }>(
    '/webhooks/:id/deliveries/:deliveryId/retry',
    async (request, reply) => {
      await ownWebhook(request);
      await withTransaction(
        db,
        (tx) => retryDelivery(tx, request.params.id, request.params.deliveryId),
        request.deadline,
      );
      app.webhookWorker.wake();
      options.actions.inc({ action: 'webhook.retry', outcome: 'ok' });
      return reply.redirect(`/console/webhooks/${request.params.id}`, 303);
    },
  );
  app.post('/signing-keys/rotate', async (_request, reply) => {
    await app.signingKeys.rotate();
    options.actions.inc({ action: 'signing-key.rotate', outcome: 'ok' });
    return reply.redirect('/console/webhooks#signing-keys', 303);
  });
}
