/**
 * The few calls of RabbitMQ's management HTTP API that provisioning needs. The URL carries
 * the administrator's credentials; they go in the Authorization header and never into an
 * error message.
 */
import { redactSecrets } from '../../shared/redact.ts';

export interface BrokerManagement {
  /** PUT: creates or replaces (idempotent). */
  put(path: string, body: unknown): Promise<void>;
  /** DELETE: a missing resource is already deleted. */
  delete(path: string): Promise<void>;
}

export function createBrokerManagement(managementUrl: string): BrokerManagement {
  const url = new URL(managementUrl);
  const authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
  url.username = '';
  url.password = '';
  const base = url.toString().replace(/\/$/, '');

  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: { authorization, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`RabbitMQ management API at ${base} not reachable`, { cause: err });
    }
    return response;
  };
  const fail = async (method: string, path: string, response: Response): Promise<never> => {
    throw new Error(`RabbitMQ management ${method} ${path}: ${response.status} ${redactSecrets(await response.text())}`);
  };
  return {
    async put(path, body) {
      const response = await call('PUT', path, body);
      if (!response.ok) await fail('PUT', path, response);
    },
    async delete(path) {
      const response = await call('DELETE', path);
      if (!response.ok && response.status !== 404) await fail('DELETE', path, response);
    },
  };
}
