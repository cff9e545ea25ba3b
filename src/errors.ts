import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error `type` the contract knows, and its HTTP status: the one place they are mapped. */
const STATUS = {
  invalid_request: 400,
  invalid_api_key: 401,
  insufficient_credits: 403,
  not_found: 404,
  method_not_allowed: 405,
  payment_method_required: 409,
  conflict: 409,
  idempotency_conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  upstream_error: 502,
  payment_provider_error: 502,
  service_unavailable: 503,
  upstream_timeout: 504,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorType = keyof typeof STATUS;

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
    this.status = options.status ?? STATUS[type];
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

export function statusOf(type: ErrorType): ContentfulStatusCode {
  return STATUS[type];
}
