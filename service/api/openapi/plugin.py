"""The OpenAPI document, derived from the blueprints and completed in one place.

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
- every response that returns a user session links to the operations on it,
  and one that returns an item (or the items an append stored) to those on it.

``openapi.yaml`` at the repository root is :func:`render_yaml` of
:func:`openapi_document`, byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from apispec import APISpec, BasePlugin
from flask_smorest import Api
from marshmallow import fields

from service.api.openapi.components import (
    CONVERSATION_ITEM_SCHEMA_REF,
    CONVERSATION_ITEMS_SCHEMA_REF,
    DESCRIPTION,
    HEAD_OPERATION_ID,
    HEADERS,
    IDEMPOTENCY_RETENTION,
    ITEM_OPERATIONS,
    ITEM_PATH_PARAMETER,
    NOT_IDEMPOTENT,
    PARAMETERS,
    REASONS,
    SECURED_PATH_PREFIX,
    SECURITY,
    SECURITY_SCHEMES,
    SERVER_REFUSAL,
    SERVER_REFUSAL_STATUSES,
    SESSION_OPERATIONS,
    USER_SESSION_PATH_PARAMETER,
    USER_SESSION_SCHEMA_REF,
)
from service.api.problems import PROBLEM_MEDIA_TYPE, stable_codes
from service.schemas.fields import IPAddress, UTCDateTime
from service.schemas.problems import ProblemSchema


def register_components(spec: APISpec) -> None:
    """The schemas, headers, parameters and security schemes operations refer to."""
    spec.components.schema("Problem", schema=ProblemSchema)
    for name, header in copy.deepcopy(HEADERS).items():
        spec.components.header(name, header)
    for name, parameter in copy.deepcopy(PARAMETERS).items():
        spec.components.parameter(name, parameter.pop("in"), parameter)
    for name, scheme in copy.deepcopy(SECURITY_SCHEMES).items():
        spec.components.security_scheme(name, scheme)
    spec.components.response("ServerRefusal", copy.deepcopy(SERVER_REFUSAL))
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
        """Schema-level rules a marshmallow schema declares in ``OPENAPI_EXTRA``; a
        problem's ``code`` is one of the stable codes."""
        schema = kwargs.get("schema")
        code = definition.get("properties", {}).get("code")
        if code is not None and _is_problem(schema):
            code["enum"] = stable_codes()
        extra = getattr(schema, "OPENAPI_EXTRA", None)
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


def _is_problem(schema: Any) -> bool:
    schema_class = schema if isinstance(schema, type) else type(schema)
    return issubclass(schema_class, ProblemSchema)


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
    for status in SERVER_REFUSAL_STATUSES:
        responses.setdefault(status, _ref("responses", "ServerRefusal"))


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
    if status < 300 and _returns(response, USER_SESSION_SCHEMA_REF):
        response.setdefault("links", user_session_links())
    if status < 300 and _returns(response, CONVERSATION_ITEM_SCHEMA_REF):
        response.setdefault("links", item_links("$response.body#/id"))
    if status < 300 and _returns(response, CONVERSATION_ITEMS_SCHEMA_REF):
        response.setdefault("links", item_links("$response.body#/items/0/id"))


def _returns(response: dict[str, Any], schema_ref: str) -> bool:
    return any(media.get("schema", {}).get("$ref") == schema_ref for media in response.get("content", {}).values())


def user_session_links() -> dict[str, Any]:
    """OpenAPI links from a response carrying a session to the operations on it."""
    links = {}
    for operation_id, takes_if_match in SESSION_OPERATIONS.items():
        parameters = {USER_SESSION_PATH_PARAMETER: "$response.body#/uuid"}
        if takes_if_match:
            parameters["header.If-Match"] = "$response.header.ETag"
        links[operation_id[0].upper() + operation_id[1:]] = {"operationId": operation_id, "parameters": parameters}
    return links


def item_links(item_id: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying an item (its id at ``item_id``) to the operations on it."""
    return {
        operation_id[0].upper() + operation_id[1:]: {
            "operationId": operation_id,
            "parameters": {
                USER_SESSION_PATH_PARAMETER: f"$request.path.{USER_SESSION_PATH_PARAMETER}",
                ITEM_PATH_PARAMETER: item_id,
            },
        }
        for operation_id in ITEM_OPERATIONS
    }


def head_twin(get_operation: dict[str, Any], operation_id: str) -> dict[str, Any]:
    """The HEAD operation Flask answers for a GET: same parameters and statuses, no bodies."""
    head = copy.deepcopy(get_operation)
    head["operationId"] = operation_id
    head["summary"] = f"{get_operation.get('summary', '').rstrip('.')} (headers only)."
    for response in head.get("responses", {}).values():
        response.pop("content", None)
        response.pop("links", None)
    return head
