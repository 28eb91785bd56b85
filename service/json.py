"""JSON documents read at orjson's speed, exactly as the standard library reads them."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# A run of 19 digits may be an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(document: str | bytes) -> Any:
    """A JSON document (a session's metadata, as the database stores it) read
    exactly as the standard library reads it, by orjson when that is the same.

    orjson reads an integer beyond 64 bits as a float, and refuses what the
    standard library accepts beyond JSON (``NaN``, lone surrogates): those go
    to the standard library.
    """
    data = document.encode() if isinstance(document, str) else document
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
