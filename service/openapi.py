"""The OpenAPI document: derived from the blueprints, completed in one place.

flask-smorest writes what each route declares (operationId, success schema,
its own headers and statuses). :class:`ContractPlugin` then adds what the
contract makes true of every operation, so that a new route is documented
completely by declaring only what is specific to it:

- every response carries ``X-Correlation-ID``; every operation accepts it;
- every status ≥ 400 answers ``application/problem+json``;
- ``/user-sessions`` operations need an API key (401, 403 on writes), may be
  rate limited (429), reject unknown query parameters (400) and may find the
  database unavailable (503); their responses carry ``Cache-Control``/``Vary``;
- a body brings 400 (malformed JSON), 413, 415 and 422; a path parameter 404;
  ``If-Match`` 412; a POST under ``/user-sessions`` takes ``Idempotency-Key``;
- PATCH accepts ``application/json`` beside ``application/merge-patch+json``;
- a GET marked with ``Blueprint.documents_head`` gets its HEAD twin;
- every response that returns a user session links to the operations on it.

``openapi.yaml`` at the repository root is :func:`render_yaml` of
:func:`openapi_document`, byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import yaml
from apispec import APISpec, BasePlugin
from flask_smorest import Api
from marshmallow import fields

from service.errors import PROBLEM_MEDIA_TYPE
from service.fields import IPAddress, UTCDateTime
from service.schemas import ProblemSchema

# Extensions a route's doc may carry for this plugin; none reaches the document.
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
        "live session. Otherwise 412.",
        "schema": {"type": "string"},
    },
    "If-None-Match": {
        "in": "header",
        "name": "If-None-Match",
        "required": False,
        "description": "Answer 304 without a body when the session's `ETag` is one of these (weak comparison).",
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
        "A key whose first request died mid-way is free again after 60 seconds.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7E]+$"},
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

**Limits of the HTTP server.** A request line over 8190 bytes (a very long
query string) is refused by gunicorn with 414 before the service sees it.

**Correlation.** `X-Correlation-ID` is on every response.
"""

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
    "database": (503, "The database is unreachable or too slow; retry after `Retry-After`."),
}


def register_components(spec: APISpec) -> None:
    """The schemas, headers, parameters and security schemes operations refer to."""
    spec.components.schema("Problem", schema=ProblemSchema)
    for name, header in copy.deepcopy(HEADERS).items():
        spec.components.header(name, header)
    for name, parameter in copy.deepcopy(PARAMETERS).items():
        spec.components.parameter(name, parameter.pop("in"), parameter)
    for name, scheme in copy.deepcopy(SECURITY_SCHEMES).items():
        spec.components.security_scheme(name, scheme)
    spec.options.setdefault("info", {})["description"] = DESCRIPTION
    spec.options["x-idempotency-retention"] = IDEMPOTENCY_RETENTION


def describe_custom_fields(api: Api) -> None:
    """How the service's own marshmallow fields appear in JSON Schema (their validators' rules)."""
    api.register_field(UTCDateTime, "string", "date-time")
    api.ma_plugin.converter.add_attribute_function(ip_address_attributes)


def ip_address_attributes(_converter: Any, field: fields.Field[Any], ret: dict[str, Any]) -> dict[str, Any]:
    """An ``IPAddress`` is an IPv4 or an IPv6 address (or null when the field allows it)."""
    if not isinstance(field, IPAddress):
        return {}
    ret.pop("type", None)  # the branches carry their own types
    branches: list[dict[str, Any]] = [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]
    if field.allow_none:
        branches.append({"type": "null"})
    return {"anyOf": branches}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _problem_response(description: str, headers: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("schemas", "Problem")}},
        "headers": {name: name for name in headers},
    }


class ContractPlugin(BasePlugin):
    """apispec plugin that completes every operation as the contract says (see the module doc)."""

    def init_spec(self, spec: APISpec) -> None:
        register_components(spec)

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        """Schema-level rules a marshmallow schema declares in ``OPENAPI_EXTRA``."""
        extra = getattr(kwargs.get("schema"), "OPENAPI_EXTRA", None)
        return copy.deepcopy(extra) if extra else None

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any) -> None:
        if path is None or not operations:
            return
        for method in list(operations):
            complete_operation(path, method, operations[method])
        for method, operation in list(operations.items()):
            head_operation_id = operation.pop(HEAD_OPERATION_ID, None)
            if method == "get" and head_operation_id:
                operations["head"] = head_twin(operation, head_operation_id)


def complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add what the contract makes true of ``operation`` at ``path`` (mutates it)."""
    secured = path.startswith(SECURED_PATH_PREFIX)
    parameters = operation.setdefault("parameters", [])
    declared = {_parameter_name(parameter) for parameter in parameters}
    idempotent_post = secured and method == "post" and operation.get("operationId") not in NOT_IDEMPOTENT

    reasons = ["internal"]
    if secured:
        operation["security"] = copy.deepcopy(SECURITY)
        reasons += ["query", "unauthenticated", "rate_limited", "database"]
        if method not in ("get", "head"):
            reasons.append("read_only_key")
    else:
        operation["security"] = []
    if "requestBody" in operation:
        reasons += ["body_json", "too_large", "media_type", "invalid_body"]
        _accept_json_for_merge_patch(operation["requestBody"])
    if "{" in path:
        reasons.append("not_found")
    if "If-Match" in declared:
        reasons.append("precondition")
    if idempotent_post:
        reasons += ["idempotency_key", "in_flight", "key_reused"]
        if "Idempotency-Key" not in declared:
            parameters.append("Idempotency-Key")
    if "X-Correlation-ID" not in declared:
        parameters.append("X-Correlation-ID")

    responses = {str(status): response for status, response in operation.get("responses", {}).items()}
    operation["responses"] = responses
    for code, descriptions in _group_reasons(reasons).items():
        if str(code) not in responses or _is_framework_default(responses[str(code)]):
            responses[str(code)] = _problem_response(" ".join(descriptions))
    for status, response in responses.items():
        _complete_response(int(status), response, method=method, secured=secured, idempotent_post=idempotent_post)


def _parameter_name(parameter: str | dict[str, Any]) -> str:
    if isinstance(parameter, str):  # a component name, resolved by apispec later
        return parameter
    if "$ref" in parameter:
        return str(parameter["$ref"]).rsplit("/", 1)[-1]
    return str(parameter.get("name"))


def _group_reasons(reasons: Iterable[str]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for reason in reasons:
        status, description = REASONS[reason]
        grouped.setdefault(status, []).append(description)
    return dict(sorted(grouped.items()))


def _is_framework_default(response: Any) -> bool:
    """flask-smorest's generic error responses (``"BAD_REQUEST"``…), replaced by ours."""
    return isinstance(response, str) or (isinstance(response, dict) and "$ref" in response)


def _accept_json_for_merge_patch(request_body: dict[str, Any]) -> None:
    content = request_body.get("content", {})
    if "application/merge-patch+json" in content:
        content.setdefault("application/json", copy.deepcopy(content["application/merge-patch+json"]))


def _complete_response(
    status: int, response: dict[str, Any], *, method: str, secured: bool, idempotent_post: bool
) -> None:
    if status >= 400 and "content" not in response:
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _ref("schemas", "Problem")}}
    headers = response.setdefault("headers", {})
    names = ["X-Correlation-ID"]
    if secured:
        names += ["Cache-Control", "Vary"]
    if status == 401:
        names.append("WWW-Authenticate")
    if status == 503:
        names.append("Retry-After")
    if status == 415 and method == "patch":
        names.append("Accept-Patch")
    if idempotent_post and status < 400:
        names.append("Idempotent-Replayed")
    for name in names:
        headers.setdefault(name, name)
    if status == 429:
        headers.setdefault("Retry-After", {**copy.deepcopy(HEADERS["Retry-After"]), "required": False})
    if status < 300 and _returns_user_session(response):
        response.setdefault("links", user_session_links())


def _returns_user_session(response: dict[str, Any]) -> bool:
    return any(
        media.get("schema", {}).get("$ref") == USER_SESSION_SCHEMA_REF for media in response.get("content", {}).values()
    )


# The operations a client can call on a session it has just received, and
# whether each takes ``If-Match`` from the response's ``ETag``.
SESSION_OPERATIONS = {
    "getUserSession": False,
    "headUserSession": False,
    "updateUserSession": True,
    "deleteUserSession": True,
    "restoreUserSession": True,
}


def user_session_links() -> dict[str, Any]:
    """OpenAPI links from a response carrying a session to the operations on it."""
    links = {}
    for operation_id, takes_if_match in SESSION_OPERATIONS.items():
        parameters = {USER_SESSION_PATH_PARAMETER: "$response.body#/uuid"}
        if takes_if_match:
            parameters["header.If-Match"] = "$response.header.ETag"
        links[operation_id[0].upper() + operation_id[1:]] = {"operationId": operation_id, "parameters": parameters}
    return links


def head_twin(get_operation: dict[str, Any], operation_id: str) -> dict[str, Any]:
    """The HEAD operation Flask answers for a GET: same parameters and statuses, no bodies."""
    head = copy.deepcopy(get_operation)
    head["operationId"] = operation_id
    head["summary"] = f"{get_operation.get('summary', '').rstrip('.')} (headers only)."
    for response in head.get("responses", {}).values():
        response.pop("content", None)
        response.pop("links", None)
    return head


def openapi_document(api: Api) -> dict[str, Any]:
    """The complete document, as served and committed."""
    document: dict[str, Any] = copy.deepcopy(api.spec.to_dict())
    return document


def render_yaml(document: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, as ``flask openapi write --format yaml`` writes it."""
    return yaml.dump(document)
