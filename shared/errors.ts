/**
 * The few error classes virtsync throws. Each has a stable `code` for logs and alerts
 * and a `retryable` flag that decides what a consumer does with the message it was
 * handling: retryable → requeue, not retryable → dead-letter.
 */
export class VirtsyncError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable;
  }
}

/** Configuration that cannot be used; names every bad variable. */
export class ConfigError extends VirtsyncError {
  constructor(message: string) {
    super('VS_INVALID_CONFIG', message, { retryable: false });
  }
}

/** A message that failed validation at a boundary. */
export class InvalidMessageError extends VirtsyncError {
  constructor(message: string, cause?: unknown) {
    super('VS_INVALID_MESSAGE', message, { retryable: false, cause });
  }
}

/** A dependency (database, broker, hypervisor) failed; trying again later may work. */
export class DependencyError extends VirtsyncError {
  readonly dependency: 'database' | 'broker' | 'hypervisor';

  constructor(dependency: DependencyError['dependency'], message: string, cause?: unknown) {
    super(`VS_${dependency.toUpperCase()}_UNAVAILABLE`, message, { retryable: true, cause });
    this.dependency = dependency;
  }
}

/** A circuit breaker refused the call: the dependency failed repeatedly and is given time. */
export class CircuitOpenError extends DependencyError {
  override readonly code = 'VS_CIRCUIT_OPEN';
}

/** Worth trying again later as it is (a dependency was unavailable). */
export function isRetryableError(err: unknown): boolean {
  return err instanceof VirtsyncError && err.retryable;
}

/** The `code` a thrown value carries (Node's `ECONNREFUSED`, PostgreSQL's SQLSTATE, opossum's `EOPENBREAKER`), if any. */
export function errorCode(value: unknown): unknown {
  return typeof value === 'object' && value !== null && 'code' in value ? value.code : undefined;
}

/** Turns any thrown value into an Error, so logs always get a stack and a message. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}
