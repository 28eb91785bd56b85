"""Schemathesis hooks: the contract's rules that the default checks cannot know.

Each hook is as narrow as the rule it encodes; everything else a check finds
fails the run.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import JsonSchemaError, RejectedPositiveData, UseAfterFree

PAST_EXPIRY_ON_CREATE = {"expires_at": ["Must be in the future when creating a session."]}
TTL_BESIDE_EXPIRY = {"ttl_seconds": ["Send either ttl_seconds or expires_at, not both."]}


@schemathesis.hook
def before_call(context: Any, case: Any, **_kwargs: Any) -> None:
    """A fresh Idempotency-Key for every positively generated request.

    Generators reuse small values ("0"), and the contract answers 422 to a key
    reused with another body: a correct answer, but not what a check that
    sends "valid data" expects. Malformed keys of negative cases are kept.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not case.headers:
        return
    for name in list(case.headers):
        if name.lower() == "idempotency-key":
            case.headers[name] = uuid.uuid4().hex


@schemathesis.hook
def filter_failure(context: Any, failure: Failure, case: Any, response: Any) -> bool:
    """Keep every failure but those the contract makes right."""
    request = response.request
    # gunicorn refuses a request line over 8190 bytes (414) before the app
    # sees it: a transport limit, not an answer of the API.
    if response.status_code == 414:
        return False
    # /openapi.yaml is text (the spec says `type: string`); schemathesis reads
    # a YAML body into the value it encodes before it checks the schema.
    if request.path_url == "/openapi.yaml" and isinstance(failure, JsonSchemaError):
        return False
    if isinstance(failure, RejectedPositiveData):
        # A well-formed code may be the wrong one (422 VERIFICATION_CODE_INCORRECT)
        # or an expired one (410): the contract's answers to a valid check.
        if request.path_url.endswith("/email-verification/check") and (
            response.status_code == 410 or _problem_code(response) == "VERIFICATION_CODE_INCORRECT"
        ):
            return False
        # A well-formed If-Match that names another version is a 412 (RFC 9110).
        if response.status_code == 412 and "If-Match" in request.headers:
            return False
        # A page_token the service did not sign is a 400 (the contract); the
        # spec can only say "a string".
        if response.status_code == 400 and set(_problem_errors(response) or {}) == {"page_token"}:
            return False
        # The same for HEAD, whose 400 has no body to name the parameter: a
        # forged page_token is the one thing a valid-looking listing can get wrong.
        if response.status_code == 400 and request.method == "HEAD" and "page_token=" in request.path_url:
            return False
        if response.status_code == 422:
            errors = _problem_errors(response)
            # ttl_seconds beside expires_at is a 422; the spec says so in
            # prose (see ``WritableFieldsSchema.OPENAPI_EXTRA``).
            if errors == TTL_BESIDE_EXPIRY:
                return False
            # A well-formed expires_at in the past is a 422 on create only;
            # JSON Schema cannot compare with "now".
            creates = request.method == "POST" and request.path_url.split("?")[0] == "/user-sessions"
            if creates and errors in (PAST_EXPIRY_ON_CREATE, {**PAST_EXPIRY_ON_CREATE, **TTL_BESIDE_EXPIRY}):
                return False
    return not (isinstance(failure, UseAfterFree) and (_may_reach_deleted(request) or _restored(response)))


def _may_reach_deleted(request: Any) -> bool:
    """Requests the contract lets find a soft-deleted session (GET and HEAD with
    ``include_deleted=true``, restore, and purge), or a cleared collection of items."""
    url = request.path_url
    path = url.split("?")[0]
    if request.method in ("GET", "HEAD") and "include_deleted=true" in url:
        return True
    if request.method == "POST" and path.endswith("/restore"):
        return True
    # Clearing a session's items leaves the collection: it lists (empty) and takes appends.
    if path.endswith("/items"):
        return True
    return request.method == "DELETE" and "purge=true" in url


def _restored(response: Any) -> bool:
    """A 200 with a live session (``deleted_at: null``): a restore, which the
    stateful phase may call between the DELETE and this request, undid it."""
    if response.status_code != 200:
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and "deleted_at" in body and body["deleted_at"] is None


def _problem_code(response: Any) -> Any:
    try:
        return json.loads(response.content).get("code")
    except (ValueError, AttributeError):
        return None


def _problem_errors(response: Any) -> Any:
    try:
        return json.loads(response.content).get("errors")
    except (ValueError, AttributeError):
        return None
