"""JSON bodies, encoded by orjson.

A page of 50 sessions takes the standard library several times as long to
encode as orjson does. Bodies come out compact, as Flask writes them outside
debug mode, and in UTF-8 (non-ASCII characters are not escaped). What orjson
refuses, an integer beyond 64 bits in a session's metadata or a key that is
not a string, is encoded by the standard library instead, so every value the
API accepts can be answered.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response as BaseResponse

# Datetimes and dataclasses reach Flask's ``default`` as with the standard
# library (an HTTP date, a dict), not orjson's own forms.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with bodies encoded by :func:`compact_body`."""

    sort_keys = False  # representations keep the contract's field order

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)  # indented, for people
        response_class: type[Response] = self._app.response_class  # type: ignore[assignment]
        return response_class(self.compact_body(self._prepare_response_obj(args, kwargs)), mimetype=self.mimetype)

    def compact_body(self, obj: Any) -> bytes:
        """``obj`` as a compact JSON body, newline-terminated, as ``jsonify`` answers it."""
        try:
            return orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError included
            return f"{self.dumps(obj, separators=(',', ':'))}\n".encode()
