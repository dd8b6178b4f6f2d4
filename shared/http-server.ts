/**
 * The operator's window into a service: /metrics (Prometheus), /healthz (the process
 * is alive) and /readyz (every check passes: connected to what it needs, breakers closed;
 * the body names each check, and why a failing one fails where that is known; 503 while
 * any fails).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { coerceError } from './errors.ts';
import type { Logger } from './logging.ts';

/** A check's outcome: a plain flag, or a flag with the reason it fails. */
export type ReadinessCheck = boolean | { ok: boolean; reason?: string };
export type ReadinessChecks = () => Record<string, ReadinessCheck>;

export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

/** The /readyz body: each check as a flag, plus the reasons of the failing ones that have one. */
export function readinessReport(checks: Record<string, ReadinessCheck>): { ready: boolean; body: Record<string, unknown> } {
  const flags: Record<string, boolean> = {};
  const reasons: Record<string, string> = {};
  for (const [name, check] of Object.entries(checks)) {
    flags[name] = typeof check === 'boolean' ? check : check.ok;
    if (typeof check !== 'boolean' && !check.ok && check.reason !== undefined) reasons[name] = check.reason;
  }
  const ready = Object.values(flags).every(Boolean);
  const body: Record<string, unknown> = { status: ready ? 'ready' : 'not ready', checks: flags };
  if (Object.keys(reasons).length > 0) body.reasons = reasons;
  return { ready, body };
}

export async function startHttpServer(options: { port: number; checks: ReadinessChecks; registry: Registry; log: Logger }): Promise<HttpServer> {
  const server: Server = createServer((request, response) => {
    const respond = (status: number, body: string, type = 'application/json'): void => {
      response.writeHead(status, { 'content-type': type });
      response.end(body);
    };
    switch (request.url) {
      case '/healthz':
        return respond(200, JSON.stringify({ status: 'ok' }));
      case '/readyz': {
        const { ready, body } = readinessReport(options.checks());
        return respond(ready ? 200 : 503, JSON.stringify(body));
      }
      case '/metrics':
        options.registry.metrics().then(
          (text) => respond(200, text, options.registry.contentType),
          (err: unknown) => respond(500, JSON.stringify({ error: coerceError(err).message })),
        );
        return;
      default:
        return respond(404, JSON.stringify({ error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, () => resolve());
  });
  const address = server.address();
  // Listening on a TCP port, so the address is never a pipe's path.
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  options.log.info({ port }, 'http server listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
