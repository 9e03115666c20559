/**
 * SyncKairosError is the one error every REST call throws: the server's
 * {"error":{code,message,details}} with the HTTP status, or a status 0
 * NETWORK_ERROR / TIMEOUT when no reply came.
 */
export class SyncKairosError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Seconds the server asked to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, details?: unknown, retryAfter?: number) {
    super(message);
    this.name = 'SyncKairosError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** Codes after which a mutation is retried with the same Idempotency-Key. */
export const RETRYABLE = new Set(['OUTCOME_UNKNOWN', 'UNAVAILABLE', 'NETWORK_ERROR', 'TIMEOUT']);
