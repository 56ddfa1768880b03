import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { client } from './fixtures.js';

/** The value of one sample in the text exposition format; 0 when the series does not exist yet. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',').filter(Boolean);
    if (wanted.every((label) => present.includes(label)) && present.length === wanted.length) return Number(match[3]);
  }
  return 0;
}

/** `GET /metrics` of an app without METRICS_TOKEN: the exposition text. */
export async function scrape(app: FastifyInstance, token?: string): Promise<string> {
  const response = await client(app, token).get('/metrics');
  expect(response.status).toBe(200);
  return response.body as string;
}
