/**
 * The operator's window into a service: /metrics (Prometheus), /healthz (the process
 * is alive) and /readyz (every check passes: connected to what it needs, breakers closed;
 * the body names each check, 503 while any fails).
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from './logging.ts';
import { metricsRegistry } from './metrics.ts';
import { coerceError } from './errors.ts';

export type ReadinessChecks = () => Record<string, boolean>;

export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

export async function startHttpServer(options: { port: number; checks: ReadinessChecks; log: Logger }): Promise<HttpServer> {
  const server: Server = createServer((request, response) => {
    const respond = (status: number, body: string, type = 'application/json'): void => {
      response.writeHead(status, { 'content-type': type });
      response.end(body);
    };
    switch (request.url) {
      case '/healthz':
        return respond(200, JSON.stringify({ status: 'ok' }));
      case '/readyz': {
        const checks = options.checks();
        const ready = Object.values(checks).every(Boolean);
        return respond(ready ? 200 : 503, JSON.stringify({ status: ready ? 'ready' : 'not ready', checks }));
      }
      case '/metrics':
        metricsRegistry.metrics().then(
          (text) => respond(200, text, metricsRegistry.contentType),
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
