import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error `type` the contract knows, and its HTTP status: the one place they are mapped. */
const STATUS = {
  invalid_request: 400,
  invalid_api_key: 401,
  insufficient_credits: 403,
  account_suspended: 403,
  insufficient_scope: 403,
  insufficient_role: 403,
  session_required: 403,
  not_found: 404,
  method_not_allowed: 405,
  payment_method_required: 409,
  payment_pending: 409,
  conflict: 409,
  idempotency_conflict: 409,
  limit_reached: 409,
  spending_limit_reached: 409,
  subscription_exists: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  upstream_error: 502,
  payment_provider_error: 502,
  service_unavailable: 503,
  /** A production gateway whose configuration is unsafe serves nothing (platform/config.ts). */
  misconfigured: 503,
  upstream_timeout: 504,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorType = keyof typeof STATUS;

/** Every error type, for the API description (http/openapi.ts). */
export const ERROR_TYPES = Object.keys(STATUS) as ErrorType[];

export function statusOf(type: ErrorType): ContentfulStatusCode {
  return STATUS[type];
}

export interface FieldError {
  field: string;
  message: string;
}

/** A failure the client is told about, rendered as `{"error": {"type", "message", ...extra}}`. */
export class ApiError extends Error {
  readonly type: ErrorType;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;
  readonly status: ContentfulStatusCode;

  constructor(
    type: ErrorType,
    message: string,
    options: {
      extra?: Record<string, unknown>;
      headers?: Record<string, string>;
      /** Only where the contract gives a type a second status (409 insufficient_credits). */
      status?: ContentfulStatusCode;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.type = type;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
    this.status = options.status ?? statusOf(type);
  }

  toBody() {
    return { error: { type: this.type, message: this.message, ...this.extra } };
  }

  static invalidRequest(message: string, fields: FieldError[]): ApiError {
    return new ApiError("invalid_request", message, { extra: { fields } });
  }

  static notFound(message = "The requested resource does not exist."): ApiError {
    return new ApiError("not_found", message);
  }

  static invalidApiKey(message = "A valid API key is required."): ApiError {
    return new ApiError("invalid_api_key", message, {
      headers: { "WWW-Authenticate": "Bearer" },
    });
  }
}

/**
 * What Cloudflare's Durable Objects infrastructure says of a call that failed: `.overloaded`
 * (refused before it ran: the object cannot keep up), else `.retryable` or `.durableObjectReset`
 * (the object restarted, moved or could not be reached; the runtime already retried what it
 * could prove never arrived). Null for anything else, an exception from our own code included.
 */
export function durableObjectFailure(err: unknown): "overloaded" | "unreachable" | null {
  if (typeof err !== "object" || err === null) return null;
  const e = err as { overloaded?: unknown; retryable?: unknown; durableObjectReset?: unknown };
  if (e.overloaded === true) return "overloaded";
  if (e.retryable === true || e.durableObjectReset === true) return "unreachable";
  return null;
}

/**
 * How long a client should wait after a 503 from an unavailable Durable Object. Overloaded:
 * long enough for the object's queue to drain (a quick retry is what overloads it). Unreachable:
 * the runtime has already retried for a few seconds, so a restart or move is mostly done.
 */
export const RETRY_AFTER_SECONDS = { overloaded: 10, unreachable: 5 } as const;

/** The 503 for a Durable Object that is overloaded or unreachable; null for any other error. */
export function serviceUnavailable(err: unknown): ApiError | null {
  const failure = durableObjectFailure(err);
  if (!failure) return null;
  const seconds = RETRY_AFTER_SECONDS[failure];
  return new ApiError(
    "service_unavailable",
    failure === "overloaded"
      ? "This account is receiving more requests than it can handle; retry later."
      : "This account's data is briefly unreachable; retry later.",
    { headers: { "Retry-After": String(seconds) }, extra: { retry_after_seconds: seconds } },
  );
}
