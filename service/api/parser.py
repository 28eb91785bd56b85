"""Request parsing for every blueprint: strict JSON bodies, 400 for query errors.

webargs reads bodies leniently (a wrong ``Content-Type`` silently becomes an
empty body, ``NaN`` is accepted). This parser answers 415 for a wrong media
type, 400 for anything that is not strict UTF-8 JSON, and leaves field
validation (422) to the schemas.
"""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from webargs.flaskparser import FlaskParser

from service.errors import MalformedJSON, UnsupportedMediaType

JSON_MEDIA_TYPE = "application/json"
MERGE_PATCH_MEDIA_TYPE = "application/merge-patch+json"
PATCH_MEDIA_TYPES = (MERGE_PATCH_MEDIA_TYPE, JSON_MEDIA_TYPE)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def loads_strict(body: bytes) -> Any:
    """Parse RFC 8259 JSON: UTF-8, no NaN or Infinity, finite numbers."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedJSON("The JSON body nests too deeply.") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedJSON(f"The request body is not valid JSON: {_short_reason(error)}") from None


def _short_reason(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8."
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}."
    return f"{error}."


class RequestParser(FlaskParser):
    """webargs parser with the service's body rules."""

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


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest blueprint that parses with :class:`RequestParser`."""

    # ``unknown=None`` leaves unknown fields to the schemas, which reject them
    # everywhere: an unknown query parameter is a 400, an unknown body field a 422.
    ARGUMENTS_PARSER = RequestParser(unknown=None)
