/**
 * The one catalogue of error codes. The wire carries the `code` string; the SDK turns it back into a
 * `MessagingError` subclass (see `errorFromWire`). Codes are stable: never rename or reuse one — add a new
 * code instead. `docs/protocol.md` lists the same table for client authors.
 */

export interface ErrorSpec {
  /** HTTP status used by the REST front door. */
  readonly http: number;
  /** Whether the server closes the connection after sending this error on the native protocol. */
  readonly fatal: boolean;
  /** Whether retrying the same operation later may succeed. */
  readonly retryable: boolean;
  /** What it means, for docs and default messages. */
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  // Framing and handshake
  PROTOCOL_ERROR: {
    http: 400,
    fatal: true,
    retryable: false,
    description: 'The bytes received are not a valid frame; the connection is closed.',
  },
  UNKNOWN_FRAME_TYPE: {
    http: 400,
    fatal: true,
    retryable: false,
    description: 'The frame type byte is not one this protocol version defines; the connection is closed.',
  },
  FRAME_TOO_LARGE: {
    http: 413,
    fatal: true,
    retryable: false,
    description: 'The frame length prefix exceeds the maximum frame size; the connection is closed.',
  },
  HANDSHAKE_REQUIRED: {
    http: 400,
    fatal: true,
    retryable: false,
    description: 'The first frame on a connection must be HELLO.',
  },
  HANDSHAKE_TIMEOUT: {
    http: 408,
    fatal: true,
    retryable: true,
    description: 'No HELLO arrived within connection_timeout_ms.',
  },
  UNSUPPORTED_VERSION: {
    http: 400,
    fatal: true,
    retryable: false,
    description: 'The client asked for a protocol version this server does not speak.',
  },
  TOO_MANY_CONNECTIONS: {
    http: 503,
    fatal: true,
    retryable: true,
    description: 'The server is at max_connections.',
  },
  SLOW_CONSUMER: {
    http: 503,
    fatal: true,
    retryable: true,
    description: "The connection's unsent bytes exceeded the per-connection cap; it was cut off.",
  },
  HEARTBEAT_TIMEOUT: {
    http: 408,
    fatal: true,
    retryable: true,
    description: 'The peer did not answer PING within two heartbeat intervals.',
  },
  SERVER_SHUTTING_DOWN: {
    http: 503,
    fatal: true,
    retryable: true,
    description: 'The server is draining and accepts no new work.',
  },

  // Request validation
  BAD_REQUEST: {
    http: 400,
    fatal: false,
    retryable: false,
    description: 'A field of the request is missing or has the wrong type.',
  },
  UNKNOWN_COMMAND: {
    http: 404,
    fatal: false,
    retryable: false,
    description: 'The command name is not known to this server.',
  },
  INVALID_TOPIC: {
    http: 400,
    fatal: false,
    retryable: false,
    description:
      'The topic is empty, longer than 255 bytes, has an empty token, or contains whitespace, * or #.',
  },
  INVALID_PATTERN: {
    http: 400,
    fatal: false,
    retryable: false,
    description: 'The subscription pattern is not a valid topic pattern.',
  },
  PAYLOAD_TOO_LARGE: {
    http: 413,
    fatal: false,
    retryable: false,
    description: 'The message payload exceeds the maximum payload size.',
  },
  INVALID_SUBSCRIPTION: {
    http: 400,
    fatal: false,
    retryable: false,
    description: 'The subscription id is unknown or already in use on this connection.',
  },

  // Request/reply
  NO_RESPONDERS: {
    http: 503,
    fatal: false,
    retryable: true,
    description: 'Nobody is subscribed to the request topic.',
  },
  TIMEOUT: {
    http: 504,
    fatal: false,
    retryable: true,
    description: 'No reply arrived before the timeout.',
  },
  RESPONDER_ERROR: {
    http: 502,
    fatal: false,
    retryable: false,
    description: 'The responder answered with an error instead of a payload.',
  },

  // Durable resources
  NOT_FOUND: { http: 404, fatal: false, retryable: false, description: 'The named resource does not exist.' },
  ALREADY_EXISTS: {
    http: 409,
    fatal: false,
    retryable: false,
    description: 'A resource with that name exists with different settings.',
  },
  QUEUE_FULL: {
    http: 507,
    fatal: false,
    retryable: true,
    description: 'The queue is at its max length and its overflow policy is reject-publish.',
  },
  UNKNOWN_DELIVERY: {
    http: 404,
    fatal: false,
    retryable: false,
    description: 'The delivery is unknown, already settled, or belongs to another consumer.',
  },
  STORAGE_FULL: {
    http: 507,
    fatal: false,
    retryable: true,
    description: 'The storage device has no space left; nothing was stored.',
  },
  STORAGE_FAILURE: {
    http: 500,
    fatal: false,
    retryable: true,
    description: 'The storage engine failed to persist or read data.',
  },

  // Security
  AUTH_REQUIRED: {
    http: 401,
    fatal: true,
    retryable: false,
    description: 'The server requires a token and none was given.',
  },
  AUTH_FAILED: {
    http: 401,
    fatal: true,
    retryable: false,
    description: 'The token or API key is invalid.',
  },
  TOKEN_EXPIRED: {
    http: 401,
    fatal: true,
    retryable: false,
    description: 'The token has expired.',
  },
  PERMISSION_DENIED: {
    http: 403,
    fatal: false,
    retryable: false,
    description: "The operation is outside the token's permissions.",
  },
  RATE_LIMITED: {
    http: 429,
    fatal: false,
    retryable: true,
    description: 'Too many requests; wait and retry.',
  },

  // Catch-all
  INTERNAL: { http: 500, fatal: false, retryable: true, description: 'An unexpected server error.' },

  // Client-side only (never sent by a server)
  CONNECTION_CLOSED: {
    http: 503,
    fatal: false,
    retryable: true,
    description: 'The connection closed before the operation completed.',
  },

  // Tasks
  TASK_CONFLICT: {
    http: 409,
    fatal: false,
    retryable: false,
    description:
      'The task is not in a state that allows this: e.g. cancelling a finished task, or a worker reporting on a task it no longer holds.',
  },
  TASK_FAILED: {
    http: 500,
    fatal: false,
    retryable: false,
    description: 'The task (or a step of the workflow) failed; the error carries the handler’s error.',
  },
  TASK_CANCELLED: {
    http: 409,
    fatal: false,
    retryable: false,
    description: 'The task was cancelled before it finished.',
  },
  TASK_EXPIRED: {
    http: 410,
    fatal: false,
    retryable: false,
    description: 'The task reached its expiry time before it started and will never run.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOGUE, code);
}

/** What an ERR frame (and a REST error body) carries. */
export interface WireError {
  code: ErrorCode;
  message: string;
  /** Optional extra facts, e.g. `retry_after_ms` for RATE_LIMITED. */
  details?: Record<string, unknown>;
}

/** Base class of every error this system raises; `code` is stable, `message` is for people. */
export class MessagingError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(
      message ?? ERROR_CATALOGUE[code].description,
      options?.cause ? { cause: options.cause } : undefined,
    );
    this.code = code;
    this.details = options?.details;
    this.name = errorClassName(code);
  }

  get fatal(): boolean {
    return ERROR_CATALOGUE[this.code].fatal;
  }

  get retryable(): boolean {
    return ERROR_CATALOGUE[this.code].retryable;
  }

  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }

  toWire(): WireError {
    return this.details
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

// Named subclasses for the errors users most often catch by type.
export class ProtocolError extends MessagingError {}
export class NoRespondersError extends MessagingError {}
export class TimeoutError extends MessagingError {}
export class PermissionError extends MessagingError {}
export class AuthError extends MessagingError {}
export class NotFoundError extends MessagingError {}
export class RateLimitedError extends MessagingError {}
export class ConnectionClosedError extends MessagingError {}

const SUBCLASS: Partial<
  Record<
    ErrorCode,
    new (
      code: ErrorCode,
      message?: string,
      options?: { cause?: unknown; details?: Record<string, unknown> },
    ) => MessagingError
  >
> = {
  PROTOCOL_ERROR: ProtocolError,
  UNKNOWN_FRAME_TYPE: ProtocolError,
  FRAME_TOO_LARGE: ProtocolError,
  NO_RESPONDERS: NoRespondersError,
  TIMEOUT: TimeoutError,
  PERMISSION_DENIED: PermissionError,
  AUTH_REQUIRED: AuthError,
  AUTH_FAILED: AuthError,
  TOKEN_EXPIRED: AuthError,
  NOT_FOUND: NotFoundError,
  RATE_LIMITED: RateLimitedError,
  CONNECTION_CLOSED: ConnectionClosedError,
};

/** `NO_RESPONDERS` → `NoRespondersError`: the `name` users see in stack traces. */
function errorClassName(code: ErrorCode): string {
  const ctor = SUBCLASS[code];
  if (ctor) return ctor.name;
  return (
    code
      .toLowerCase()
      .split('_')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join('') + 'Error'
  );
}

/** Builds the typed error for a code, e.g. `messagingError('NOT_FOUND', 'queue "x" does not exist')`. */
export function messagingError(
  code: ErrorCode,
  message?: string,
  options?: { cause?: unknown; details?: Record<string, unknown> },
): MessagingError {
  const Ctor = SUBCLASS[code] ?? MessagingError;
  return new Ctor(code, message, options);
}

/** Turns an ERR frame's body back into a typed error; an unknown code becomes INTERNAL, keeping the text. */
export function errorFromWire(wire: {
  code?: unknown;
  message?: unknown;
  details?: unknown;
}): MessagingError {
  const code: ErrorCode = isErrorCode(wire.code) ? wire.code : 'INTERNAL';
  const message = typeof wire.message === 'string' ? wire.message : ERROR_CATALOGUE[code].description;
  const details =
    wire.details && typeof wire.details === 'object' ? (wire.details as Record<string, unknown>) : undefined;
  const text = code === 'INTERNAL' && wire.code !== 'INTERNAL' ? `${String(wire.code)}: ${message}` : message;
  return messagingError(code, text, details ? { details } : undefined);
}
