"""``Idempotency-Key`` on POST routes: one decorator, placed between a view's
``@blp.arguments`` (so only valid requests reach it) and its ``@blp.response``
(so it sees the finished response).

The protocol itself (claim, perform, replay) lives in ``service.operations.idempotency``;
this module maps it to HTTP: the header, the request's fingerprint, what of a
response is stored and how a replay is answered.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request, url_for
from sqlalchemy.exc import SQLAlchemyError

from service.api.headers import refuse_if_repeated
from service.api.parser import loads_strict
from service.errors import InvalidHeader, MalformedJSON, WriteConflict
from service.keys import derived_key, keyed_fingerprint
from service.models import IDEMPOTENCY_KEY_MAX_LENGTH
from service.operations import idempotency
from service.repositories import IdempotencyScope
from service.security.api_keys import current_key_identity

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# The headers a replay repeats; the others (correlation id, caching) are the replay's own.
STORED_HEADERS = ("Content-Type", "ETag", "Location")
# Validation failures are not remembered (the contract), nor is a 503: the work
# was rolled back and the answer itself says to retry. Database failures never
# become a stored response at all (see ``_respond``).
FORGOTTEN_STATUSES = frozenset({400, 415, 422, 503})
# Where a created session's Location points (``/user-sessions/<uuid>``).
CREATED_PREFIX = "/user-sessions/"
# Visible ASCII but the comma: a header sent twice reaches the app as its values joined by commas.
_VISIBLE_ASCII = re.compile(rf"[\x21-\x2b\x2d-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")


@dataclass(frozen=True)
class _Outcome:
    response: Response
    transient: bool = False


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Honour ``Idempotency-Key`` on ``view``: run it once per key, replay the answer."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = idempotency_key()
        if key is None:
            return view(*args, **kwargs)
        scope = IdempotencyScope(current_key_identity(), request.method, canonical_path(), key)
        claimed = idempotency.claim(scope, request_fingerprint())
        if isinstance(claimed, idempotency.StoredResponse):
            return replay(claimed)
        outcome = idempotency.perform(claimed, lambda: _respond(view, args, kwargs), _stored_response)
        return outcome.response

    return wrapper


def idempotency_key() -> str | None:
    """The request's key, None without one; 400 when it is malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    refuse_if_repeated(HEADER)
    if len(values) > 1 or not _VISIBLE_ASCII.fullmatch(values[0]):
        raise InvalidHeader(
            errors={
                HEADER: [
                    f"Must be sent once, as 1-{IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters other than a comma."
                ]
            }
        )
    return values[0]


def canonical_path() -> str:
    """The request's path as the app spells it (a path uuid in lower case)."""
    return url_for(request.endpoint or "", **(request.view_args or {}))


def request_fingerprint() -> str:
    """A keyed hash of the body as parsed JSON (key order and spacing do not count).

    Keyed, because a body may hold a secret (a verification code) that a
    plain hash of six digits would give away.
    """
    body = request.get_data(cache=True)
    try:
        canonical = b"json:" + json.dumps(loads_strict(body) if body else {}, sort_keys=True).encode()
    except MalformedJSON:
        canonical = b"raw:" + body  # a body the route does not read
    return keyed_fingerprint(derived_key(current_app.config["SECRET_KEY"], "idempotency-request"), canonical)


def replay(stored: idempotency.StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _respond(view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Outcome:
    """The view's response, errors included, answered as the app would answer them.

    Database failures are raised instead: the unit of work rolls back, the
    key is released and the app answers them (503), so a retry runs again.
    """
    try:
        return _Outcome(current_app.make_response(view(*args, **kwargs)))
    except SQLAlchemyError:
        raise
    except Exception as error:
        response = current_app.make_response(current_app.handle_user_exception(error))
        return _Outcome(response, transient=isinstance(error, WriteConflict))


def _stored_response(outcome: _Outcome) -> idempotency.StoredResponse | None:
    response = outcome.response
    if outcome.transient or response.status_code in FORGOTTEN_STATUSES:
        return None
    headers = {name: response.headers[name] for name in STORED_HEADERS if name in response.headers}
    return idempotency.StoredResponse(response.status_code, headers, response.get_data(), _carried_session(response))


def _carried_session(response: Response) -> uuid.UUID | None:
    """The session whose data the response may carry: the one the path names,
    else the one it created (its ``Location``). Purging that session erases
    the stored response with it."""
    named = (request.view_args or {}).get("user_session_uuid")
    if isinstance(named, uuid.UUID):
        return named
    location = response.headers.get("Location", "")
    if location.startswith(CREATED_PREFIX):
        try:
            return uuid.UUID(location[len(CREATED_PREFIX) :].split("/", 1)[0])
        except ValueError:
            return None
    return None
