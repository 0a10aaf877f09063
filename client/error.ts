/**
 * What a controller call throws: a SeedwireError whose code is the API's own
 * (`{"error":{"code","message"}}`), with the HTTP status it came with. `httpStatus` is 0 when the
 * request never got an answer (controller down, refused connection, DNS, TLS).
 */
import { isErrorCode, SeedwireError, type ErrorCode } from '../shared/errors.js';

export class ApiError extends SeedwireError {
  /** The HTTP status of the answer; 0 when there was none. */
  readonly httpStatus: number;
  /** The code exactly as the controller sent it (a newer controller may send codes this client does not know). */
  readonly apiCode: string;

  constructor(httpStatus: number, apiCode: string, message: string, options: { cause?: unknown } = {}) {
    super(knownCode(apiCode, httpStatus), message, options);
    this.httpStatus = httpStatus;
    this.apiCode = apiCode;
  }

  override get status(): number {
    return this.httpStatus;
  }

  /** No answer at all, or a gateway saying the controller behind it is down. */
  get unreachable(): boolean {
    return this.code === 'SEEDWIRE_UNREACHABLE';
  }
}

function knownCode(apiCode: string, httpStatus: number): ErrorCode {
  if (isErrorCode(apiCode)) return apiCode;
  if (httpStatus === 401 || httpStatus === 403) return 'SEEDWIRE_AUTH';
  if (httpStatus === 404) return 'SEEDWIRE_NOT_FOUND';
  if (httpStatus === 0 || httpStatus === 502 || httpStatus === 503 || httpStatus === 504) return 'SEEDWIRE_UNREACHABLE';
  if (httpStatus >= 400 && httpStatus < 500) return 'SEEDWIRE_BAD_REQUEST';
  return 'SEEDWIRE_INTERNAL';
}

/** Reads an error answer: the API's JSON error when there is one, else the status line. */
export async function readApiError(response: Response, what: string): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string' && typeof body.error.message === 'string') {
      return new ApiError(response.status, body.error.code, body.error.message);
    }
  } catch {
    // Not JSON (a proxy's page, a plain-text 503): described by its status line below.
  }
  const statusLine = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  return new ApiError(response.status, `HTTP_${response.status}`, `${what}: ${statusLine}`);
}
