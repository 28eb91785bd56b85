"""What the OpenAPI document says of every operation beyond its route: security
schemes, shared headers and parameters, the service's description, and the
reasons an operation can fail (``service.api.openapi.plugin`` applies them)."""

from __future__ import annotations

from typing import Any

HEAD_OPERATION_ID = "x-head-operation-id"

IDEMPOTENCY_RETENTION = "24h"
SECURED_PATH_PREFIX = "/user-sessions"
# POSTs that never replay: each call must issue a new verification code.
NOT_IDEMPOTENT = frozenset({"issueEmailVerification"})
USER_SESSION_SCHEMA_REF = "#/components/schemas/UserSession"
USER_SESSION_PATH_PARAMETER = "user_session_uuid"

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <key>` with a key from the service's `API_KEYS`.",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "`X-API-Key: <key>`, the same keys as bearerAuth.",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]

HEADERS: dict[str, dict[str, Any]] = {
    "X-Correlation-ID": {
        "description": "The caller's correlation id when it is sane (at most 128 characters of `[A-Za-z0-9._-]`), "
        "else one the service generated; also in every problem body and log line of the request.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
    },
    "ETag": {
        "description": 'Strong entity tag of the session: its version in quotes, e.g. `"7"`. '
        "Send it back in `If-Match` or `If-None-Match`.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Location": {
        "description": "Path of the created session.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Link": {
        "description": 'RFC 8288 link to the next page, `<URL>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Whole seconds, rounded up, to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "Cache-Control": {
        "description": "Session data may be stored only by the client and must be revalidated "
        "(`private, no-cache`); a verification code is never stored (`no-store`).",
        "schema": {"type": "string"},
    },
    "Vary": {
        "description": "Representations differ by credentials: `Authorization, X-API-Key`.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this response replays the first response to the same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: how to authenticate.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Accept-Patch": {
        "description": "The media types PATCH accepts.",
        "required": True,
        "schema": {"type": "string"},
    },
}

PARAMETERS: dict[str, dict[str, Any]] = {
    "X-Correlation-ID": {
        "in": "header",
        "name": "X-Correlation-ID",
        "required": False,
        "description": "Echoed on the response when it is at most 128 characters of `[A-Za-z0-9._-]`; "
        "any other value is replaced by a generated id.",
        "schema": {"type": "string"},
    },
    "If-Match": {
        "in": "header",
        "name": "If-Match",
        "required": False,
        "description": "Act only if the session's `ETag` is one of these (strong comparison); `*` matches any "
        "live session. Otherwise 412. Send it once (a list in one header): sent twice, it is a 400.",
        "schema": {"type": "string"},
    },
    "If-None-Match": {
        "in": "header",
        "name": "If-None-Match",
        "required": False,
        "description": "Answer 304 without a body when the session's `ETag` is one of these (weak comparison). "
        "Send it once (a list in one header): sent twice, it is a 400.",
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "description": "Makes the POST safe to retry. A retry with the same key and the same JSON body within "
        f"{IDEMPOTENCY_RETENTION} replays the first response (adding `Idempotent-Replayed: true`); the same "
        "key with another body is a 422; a retry while the first is in flight is a 409. Scoped by API key, "
        "method and path. Responses of 400, 415, 422 and 503, and a 409 WRITE_CONFLICT, are not remembered. "
        "A key whose first request died mid-way is free again after 60 seconds. Send it once: a key sent "
        "twice is a 400. *Deviation from the contract*, which allows any visible ASCII: a comma is refused, "
        "since servers join a repeated header's values with commas, and a key must never be two keys joined.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x2B\\x2D-\\x7E]+$"},
        "x-idempotency-retention": IDEMPOTENCY_RETENTION,
    },
}

DESCRIPTION = f"""\
The user-sessions service owns the session data of the Maria agent backend.

**Authentication.** When the service is configured with API keys, every
`/user-sessions` request sends one as `Authorization: Bearer <key>` or
`X-API-Key: <key>`: 401 without, 403 when a read-only key writes. The
operational endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.*`,
`/docs`) are open. Checks run in this order: authentication (401/403),
validation (400/415/422), state (404/409/412 and the like).

**Errors** are RFC 9457 `application/problem+json` with a stable
UPPER_SNAKE_CASE `code`, `errors` (field or parameter name to its messages) for
validation failures, and the request's `correlation_id`. Query-string errors
are 400, body errors 422.

**Conditional requests.** A session's `ETag` is its version in quotes; send it
in `If-Match` on PATCH, DELETE and restore (412 when it no longer matches), or
in `If-None-Match` on GET (304).

**Idempotency.** Every POST under `/user-sessions` except the one that issues a
verification code honours `Idempotency-Key`; the service remembers a response
for {IDEMPOTENCY_RETENTION} (`x-idempotency-retention`), so a client may retry
a POST whose answer it lost for that long without acting twice. Responses of
400, 415 and 422 are not remembered. *Deviation from the contract*, which
remembers every other response: a 503 (the database failed; the work was
rolled back) and a 409 `WRITE_CONFLICT` are not remembered either, since
replaying them would make a retry fail that would now succeed.

**Limits.** What is stored and served is bounded, whatever was sent:

| what | limit | beyond it |
|---|---|---|
| request body | 64 KiB, `Content-Length` or chunked alike | 413 `PAYLOAD_TOO_LARGE` |
| `metadata` | 16 KiB serialised as stored and served, 32 levels of nesting | 422 |
| `metadata.KEY` filters | 10 in one listing | 400 |
| `limit` | 1 to 500 items a page | 400 |
| `page_token` | 2048 characters | 400 |
| `Idempotency-Key` | 1 to 255 visible ASCII characters but the comma, sent once | 400 |
| request line (method, path and query string) | 8190 bytes | 414, from gunicorn |
| header fields | 100 fields of at most 8190 bytes each | 431 or 400, from gunicorn |

A number in `metadata` counts at the length PostgreSQL prints it back with
(`1e308` is 309 digits). A session's representation is therefore at most
about 17 KiB, and a page at most 500 of them.

**Refusals before the service.** The HTTP server (gunicorn) refuses some
requests itself, for any path and method, before authentication. These
answers are `text/html` (a short page naming the limit), not problem
documents; they carry `Connection: close` and no `X-Correlation-ID`
(`ServerRefusal`, listed as 414 and 431 on every operation):

- 400: a malformed request line or header (a bare LF line ending,
  conflicting `Content-Length` and `Transfer-Encoding`, a malformed chunk);
- 408 (empty body): the request did not arrive whole within 15 s of its
  first byte;
- 414: a request line (method, path with query, version) over 8190 bytes;
- 417: an `Expect` other than `100-continue`;
- 431: more than 100 header fields, a header field over 8190 bytes, or a
  request head over 65,536 bytes;
- 501: a `Transfer-Encoding` other than `chunked`.

Header names containing `_` are ignored. A body over 64 KiB is the
service's own 413 (`application/problem+json`). `SCRIPT_NAME` and
`X-Forwarded-*` headers count only from configured proxies
(`FORWARDED_ALLOW_IPS`); from anyone else they change nothing.

**Correlation.** `X-Correlation-ID` is on every response.
"""

# What gunicorn answers itself, before the service sees a request.
SERVER_REFUSAL = {
    "description": "Refused by the HTTP server before the service saw the request (see the API description); "
    "`Connection: close`.",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
SERVER_REFUSAL_STATUSES = ("414", "431")

# Why each status can answer, per kind of operation; the route's own
# description wins where it declares the status itself.
REASONS = {
    "query": (400, "A query parameter is unknown or malformed."),
    "body_json": (400, "The body is not valid JSON."),
    "idempotency_key": (400, "`Idempotency-Key` is not 1 to 255 visible ASCII characters."),
    "unauthenticated": (401, "No valid API key was sent."),
    "read_only_key": (403, "The API key may only read."),
    "not_found": (404, "No live session has this uuid (a malformed uuid included)."),
    "in_flight": (409, "A request with this `Idempotency-Key` is still in flight."),
    "precondition": (412, "`If-Match` does not match the session's current `ETag`."),
    "too_large": (413, "The body is larger than 64 KiB."),
    "media_type": (415, "The body's `Content-Type` is not accepted here."),
    "invalid_body": (422, "A body field is invalid, read-only or unknown; `errors` names each."),
    "key_reused": (422, "This `Idempotency-Key` was used with another body."),
    "rate_limited": (429, "Too many requests for this API key."),
    "internal": (500, "The service failed; the problem carries the correlation id to report."),
    "database": (
        503,
        "The database is unreachable, silent (no answer within the statement timeout plus a second), "
        "too slow, or takes no writes (read-only, as during a failover); retry after `Retry-After`.",
    ),
}


# The operations a client can call on a session it has just received, and
# whether each takes ``If-Match`` from the response's ``ETag``.
SESSION_OPERATIONS = {
    "getUserSession": False,
    "headUserSession": False,
    "updateUserSession": True,
    "deleteUserSession": True,
    "restoreUserSession": True,
    "appendConversationItems": False,
    "listConversationItems": False,
    "popConversationItem": False,
    "clearConversationItems": False,
}
CONVERSATION_ITEM_SCHEMA_REF = "#/components/schemas/ConversationItem"
CONVERSATION_ITEMS_SCHEMA_REF = "#/components/schemas/ConversationItems"
ITEM_PATH_PARAMETER = "item_id"
# The operations a client can call on an item it has just received.
ITEM_OPERATIONS = ("getConversationItem", "deleteConversationItem")
