import type { FastifyInstance } from 'fastify';
import { withTransaction } from '../../db/unit-of-work.js';
import { defineOperation } from '../../http/operation.js';
import { recordCheckinOutcome, recordCheckoutOutcome, recordHeartbeatOutcome } from './metrics.js';
import {
  CheckinResponseSchema,
  CheckoutBodySchema,
  CheckoutResponseSchema,
  HeartbeatResponseSchema,
  SessionCallBodySchema,
} from './schemas.js';
import { checkinSession, checkoutSession, heartbeatSession } from './service.js';

const tag = 'Floating licenses';

/** The floating-license operations (docs/api.md, "Floating licenses"); v2 paths only. */
export function sessionOperations(app: FastifyInstance) {
  const db = app.database.db;

  const checkout = defineOperation({
    method: 'POST',
    url: '/key/checkout',
    scope: 'licenses:activate',
    tag,
    summary: 'Check out a seat of a floating license',
    input: CheckoutBodySchema,
    response: CheckoutResponseSchema,
    async run(request, body) {
      const { checkout } = await recordCheckoutOutcome(
        withTransaction(db, (tx) => checkoutSession(tx, request.auth, body), request.deadline),
      );
      return { code: 0 as const, message: 'Session checked out', ...checkout };
    },
  });

  const heartbeat = defineOperation({
    method: 'POST',
    url: '/key/heartbeat',
    scope: 'licenses:activate',
    tag,
    summary: 'Renew the lease of a floating session',
    input: SessionCallBodySchema,
    response: HeartbeatResponseSchema,
    async run(request, body) {
      // No unit of work: the heartbeat's statements are each atomic on their own, and the end of
      // a refused session must not roll back with the 403 (service.ts, heartbeatSession).
      const { renewed } = await recordHeartbeatOutcome(heartbeatSession(db, request.auth, body));
      return {
        code: 0 as const,
        message: 'Heartbeat accepted',
        expiresAt: renewed.expiresAt.toISOString(),
        nextNonce: renewed.nextNonce,
      };
    },
  });

  const checkin = defineOperation({
    method: 'POST',
    url: '/key/checkin',
    scope: 'licenses:activate',
    tag,
    summary: 'Check a floating session in and free its seat',
    input: SessionCallBodySchema,
    response: CheckinResponseSchema,
    async run(request, body) {
      await recordCheckinOutcome(checkinSession(db, request.auth, body));
      return { code: 0 as const, message: 'Session checked in' };
    },
  });

  return { checkout, heartbeat, checkin };
}
