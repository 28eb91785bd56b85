"""Request parsing for every blueprint: strict JSON bodies, 400 for query errors.

webargs reads bodies leniently (a wrong ``Content-Type`` silently becomes an
empty body, ``NaN`` is accepted). This parser answers 415 for a wrong media
type, 400 for anything that is not strict UTF-8 JSON, and leaves field
validation (422) to the schemas.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import flask
import flask_smorest
from marshmallow import Schema
from webargs.flaskparser import FlaskParser

from service.api.openapi.components import HEAD_OPERATION_ID
from service.errors import MalformedJSON, UnsupportedMediaType

F = TypeVar("F", bound=Callable[..., Any])

JSON_MEDIA_TYPE = "application/json"
MERGE_PATCH_MEDIA_TYPE = "application/merge-patch+json"
PATCH_MEDIA_TYPES = (MERGE_PATCH_MEDIA_TYPE, JSON_MEDIA_TYPE)


def _reject_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON value.")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotJSON("a number is too large.")
    return value


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, unless a key repeats: which of its values counts is not for us to guess."""
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise _NotJSON(f"the key {json.dumps(key)} appears twice in one object.")
        seen.add(key)
    return dict(pairs)


class _NotJSON(ValueError):
    """A reason, in the service's words, why a body is not the JSON it accepts."""


def loads_strict(body: bytes) -> Any:
    """Parse RFC 8259 JSON: UTF-8 without a byte order mark, no NaN or Infinity,
    finite numbers, no key twice in one object. Every refusal says why in the
    service's words (``MalformedJSON``)."""
    if body.startswith(b"\xef\xbb\xbf"):
        raise MalformedJSON("The request body starts with a byte order mark; send UTF-8 without one.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJSON("The request body is not valid UTF-8.") from None
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_refuse_repeated_keys,
        )
    except RecursionError:
        raise MalformedJSON("The JSON body nests too deeply.") from None
    except _NotJSON as error:
        raise MalformedJSON(f"The request body is not valid JSON: {error}") from None
    except json.JSONDecodeError as error:
        raise MalformedJSON(
            f"The request body is not valid JSON: it goes wrong at line {error.lineno}, column {error.colno}."
        ) from None
    except ValueError:
        # What else the decoder refuses is a number too long to read (over 4300 digits).
        raise MalformedJSON("The request body is not valid JSON: a number has too many digits.") from None


# Parsed query strings kept per parser: the most recent ones, short ones only.
_PARSED_QUERIES = 512
_PARSED_QUERY_MAX_BYTES = 512


class RequestParser(FlaskParser):
    """webargs parser with the service's body rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsed: dict[tuple[Schema, bytes], dict[str, Any]] = {}
        self._parsed_lock = threading.Lock()

    def parse(
        self, argmap: Any, req: flask.Request | None = None, *, location: str | None = None, **kwargs: Any
    ) -> Any:
        """As webargs parses, but a query string seen lately is not parsed again.

        Parsing a query is a function of its text alone, and its values are
        immutable (numbers, text, datetimes, tuples), so a copy of the earlier
        result is the same result. Most requests send no query or the same
        short one (``?limit=50``); a query that fails to parse is never kept.
        """
        query = (req or flask.request).query_string
        if location != "query" or not isinstance(argmap, Schema) or len(query) > _PARSED_QUERY_MAX_BYTES:
            return super().parse(argmap, req, location=location, **kwargs)
        key = (argmap, query)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = super().parse(argmap, req, location=location, **kwargs)
            with self._parsed_lock:
                if len(self._parsed) >= _PARSED_QUERIES:
                    del self._parsed[next(iter(self._parsed))]  # the oldest
                self._parsed[key] = parsed
        return dict(parsed)

    def _raw_load_json(self, req: flask.Request) -> Any:
        accepted = PATCH_MEDIA_TYPES if req.method == "PATCH" else (JSON_MEDIA_TYPE,)
        body = req.get_data(cache=True)
        if not body and not req.mimetype and req.method == "POST":
            return {}  # a bare POST creates with defaults, like ``{}``
        charset = req.mimetype_params.get("charset", "utf-8").lower()
        if req.mimetype not in accepted or charset not in ("utf-8", "utf8"):
            headers = {"Accept-Patch": ", ".join(PATCH_MEDIA_TYPES)} if req.method == "PATCH" else {}
            raise UnsupportedMediaType(
                f"Send the body as {' or '.join(accepted)} (UTF-8), not {req.mimetype or 'no Content-Type'}.",
                headers=headers,
            )
        if not body:
            raise MalformedJSON("The request body is empty; send a JSON object.")
        return loads_strict(body)


def body_limit(max_bytes: int) -> Callable[[F], F]:
    """Let this view's request bodies be up to ``max_bytes`` (413 above), in
    place of the app's ``MAX_CONTENT_LENGTH``. Place it above ``@blp.arguments``:
    it must run before anything reads the body."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flask.request.max_content_length = max_bytes
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest blueprint that parses with :class:`RequestParser` and
    documents the request headers and HEAD twins its routes declare.
    """

    # ``unknown=None`` leaves unknown fields to the schemas, which reject them
    # everywhere: an unknown query parameter is a 400, an unknown body field a 422.
    ARGUMENTS_PARSER = RequestParser(unknown=None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_request_headers_doc)

    def arguments(self, schema: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, but a schema class is instantiated once, here:
        webargs would build (and deep-copy the fields of) a new one per request."""
        return super().arguments(schema() if isinstance(schema, type) else schema, **kwargs)

    @staticmethod
    def request_headers(*names: str) -> Callable[[F], F]:
        """Document request headers the view reads itself (``If-Match``…), by their
        component names in ``service.api.openapi.components.PARAMETERS``."""

        def decorator(func: F) -> F:
            apidoc = dict(getattr(func, "_apidoc", {}))
            apidoc["request_headers"] = [*apidoc.get("request_headers", []), *names]
            func._apidoc = apidoc  # type: ignore[attr-defined]
            return func

        return decorator

    @staticmethod
    def documents_head(operation_id: str) -> Callable[[F], F]:
        """Document the HEAD Flask answers for this GET, as ``operation_id``."""

        def decorator(func: F) -> F:
            apidoc = dict(getattr(func, "_apidoc", {}))
            apidoc["head_operation_id"] = operation_id
            func._apidoc = apidoc  # type: ignore[attr-defined]
            return func

        return decorator

    @staticmethod
    def _prepare_request_headers_doc(doc: dict[str, Any], doc_info: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        for name in doc_info.get("request_headers", []):
            doc.setdefault("parameters", []).append(name)
        if "head_operation_id" in doc_info:
            doc[HEAD_OPERATION_ID] = doc_info["head_operation_id"]
        return doc
