/**
 * The one registry of seedwire error codes. Every error that crosses a process boundary
 * (wire frame, HTTP answer, CLI exit line) carries one of these codes. docs/errors.md lists the
 * same codes; test/unit/errors.test.ts checks that the two agree.
 */
export const ERROR_CODES = {
  SEEDWIRE_AUTH: { status: 401, description: 'missing or wrong bearer token (agent or admin)' },
  SEEDWIRE_UNREACHABLE: { status: 502, description: 'a client (the seedwire command line) got no answer from the controller: down, refused, or a gateway in front of it failing' },
  SEEDWIRE_FORBIDDEN: { status: 403, description: 'authenticated or not, the request may not come from where it came (a console WebSocket from another origin)' },
  SEEDWIRE_BAD_REQUEST: { status: 400, description: 'the HTTP request is malformed (body is not JSON, wrong shape)' },
  SEEDWIRE_BAD_PARAMS: { status: 400, description: "an operation's or seed's parameters failed validation; the message names the field" },
  SEEDWIRE_NOT_FOUND: { status: 404, description: 'no such operation, seed or route' },
  SEEDWIRE_AGENT_UNKNOWN: { status: 404, description: 'no agent with that id has ever connected' },
  SEEDWIRE_AGENT_OFFLINE: { status: 409, description: 'the agent is known but not connected now' },
  SEEDWIRE_OP_UNKNOWN: { status: 404, description: 'no operation of that name' },
  SEEDWIRE_OP_REFUSED: { status: 409, description: 'the agent refuses the operation (missing config section, MySQL running, snapshot mounted, arbitrary commands disabled, ...); the message says why' },
  SEEDWIRE_COMMAND_FAILED: { status: 502, description: 'a host command exited non-zero; stderr is in the message and the output' },
  SEEDWIRE_TIMEOUT: { status: 504, description: 'the operation or command did not finish in time' },
  SEEDWIRE_CANCELED: { status: 409, description: 'the operation was canceled' },
  SEEDWIRE_DISCONNECTED: { status: 503, description: "the agent's link dropped and the operation's outcome could not be delivered" },
  SEEDWIRE_LOST: { status: 500, description: 'after a restart neither side knows the operation any more; its outcome is unknown' },
  SEEDWIRE_CONFLICT: { status: 409, description: 'the request conflicts with current state (a seed already active on an agent, a seed not abortable, ...)' },
  SEEDWIRE_PRECHECK_FAILED: { status: 409, description: 'a seed precheck failed; the message says which' },
  SEEDWIRE_NO_SPACE: { status: 409, description: 'the target has not enough free space for the seed, or a file system filled up during an operation (ENOSPC)' },
  SEEDWIRE_VERIFY_FAILED: { status: 500, description: 'a checksum or digest did not match; the seed failed and the target keeps its incomplete marker' },
  SEEDWIRE_PATH_ESCAPE: { status: 400, description: 'a received record was refused: its path would land outside the data directory or names an excluded or unsafe name, a symlink leads outside, or the stream declares more bytes than the precheck allowed; the message names the record' },
  SEEDWIRE_BAD_FRAME: { status: 400, description: 'a protocol frame failed to parse or validate' },
  SEEDWIRE_FRAME_TOO_LARGE: { status: 413, description: 'a protocol frame is larger than the limit' },
  SEEDWIRE_PROTOCOL: { status: 502, description: "an agent answered an operation with a result that does not match the operation's contract; the message names the op and the field" },
  SEEDWIRE_PROTOCOL_VERSION: { status: 400, description: 'the peer speaks a protocol version this side does not' },
  SEEDWIRE_CONFIG: { status: 400, description: 'bad flags or configuration; the message names the key' },
  SEEDWIRE_SHUTTING_DOWN: { status: 503, description: 'the process is draining and takes no new work' },
  SEEDWIRE_RATE_LIMITED: { status: 429, description: 'too many failed agent authentications from this address; retry after the Retry-After seconds' },
  SEEDWIRE_TOO_MANY_CONNECTIONS: { status: 503, description: 'too many agent connections are waiting for their hello; retry later' },
  SEEDWIRE_BUSY: { status: 503, description: 'the controller paces new agent connections (after a restart the fleet is readmitted gradually); retry after the Retry-After header' },
  SEEDWIRE_PROXY: { status: 502, description: "the agent's outbound proxy refused (407, 403, 5xx) or dropped the tunnel to the controller; the message names the proxy and its status" },
  SEEDWIRE_BUS_UNAVAILABLE: { status: 503, description: "cluster mode: the bus (NATS) is unreachable, so an operation on an agent held by another controller cannot be routed now; the controller's own agents keep working" },
  SEEDWIRE_INTERNAL: { status: 500, description: 'an unexpected failure; the message and logs say more' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** An error that carries a stable code; what every module throws for an expected failure. */
export class SeedwireError extends Error {
  override readonly name = 'SeedwireError';
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Normalise any throwable at an edge, keeping the original as `cause`. */
export function toSeedwireError(error: unknown, fallback: ErrorCode = 'SEEDWIRE_INTERNAL'): SeedwireError {
  if (error instanceof SeedwireError) return error;
  if (error instanceof Error) {
    if (error.name === 'AbortError') return new SeedwireError('SEEDWIRE_CANCELED', error.message, { cause: error });
    return new SeedwireError(fallback, error.message, { cause: error });
  }
  return new SeedwireError(fallback, String(error));
}
