import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Scope } from '../lib/scopes.js';
import { ErrorResponses } from './schemas.js';

/**
 * One endpoint of the public API described once: its input schema, its answer and what it
 * runs. `route()` registers it at its v2 path; `v1Route()` (http/v1.ts) at a legacy path.
 */
export interface Operation<Input extends TSchema = TSchema, Output extends TSchema = TSchema> {
  method: 'GET' | 'POST' | 'PATCH';
  url: string;
  scope: Scope;
  tag: string;
  summary: string;
  /** The query string of a GET, else the JSON body. */
  input: Input;
  response: Output;
  run(request: FastifyRequest, input: Static<Input>, reply: FastifyReply): Promise<Static<Output>>;
}

/** Keeps the input and output types of an operation's `run` tied to its schemas. */
export const defineOperation = <Input extends TSchema, Output extends TSchema>(
  operation: Operation<Input, Output>,
): Operation<Input, Output> => operation;

export function route(operation: Operation): RouteOptions {
  const inQuery = operation.method === 'GET';
  return {
    method: operation.method,
    url: operation.url,
    config: { scope: operation.scope },
    schema: {
      tags: [operation.tag],
      summary: operation.summary,
      [inQuery ? 'querystring' : 'body']: operation.input,
      response: { 200: operation.response, ...ErrorResponses },
    },
    handler: (request, reply) => operation.run(request, inQuery ? request.query : request.body, reply),
  };
}
