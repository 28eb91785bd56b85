"""Strict marshmallow fields for a JSON API.

marshmallow's defaults are lenient in ways an API contract is not: ``1`` is a
boolean, ``True`` an integer, a naive datetime is accepted. These fields take
exactly the JSON types the contract names.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from marshmallow import ValidationError, fields

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$",
)


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with the stored microseconds: ``2026-11-27T05:00:00.123456Z``.

    A naive value is taken as UTC. The year has four digits (``0081-…``), as
    RFC 3339 requires. orjson writes the same text several times faster than
    ``isoformat``, but leaves out a fraction of zero: such values take
    ``isoformat``.
    """
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.microsecond:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # without its "+00:00"


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; return it in UTC.

    Fractions finer than a microsecond are truncated, as the database would.
    """
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("Not an RFC 3339 datetime with a time zone offset (e.g. 2026-11-27T05:00:00Z).")
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    offset = match.group(8).upper()
    text = f"{value[:19].replace('t', 'T').replace(' ', 'T')}.{fraction}{'+00:00' if offset == 'Z' else offset}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("Not a valid datetime.") from None


class UTCDateTime(fields.Field[datetime]):
    """An RFC 3339 datetime with an explicit offset, normalised to UTC."""

    default_error_messages = {"invalid": "Not a valid RFC 3339 datetime with a time zone offset."}

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_datetime(value)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return parse_datetime(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None


# A "+" left unencoded in a query string arrives as a space; in the offset of
# a datetime it can have meant nothing else.
_OFFSET_SIGN_AS_SPACE = re.compile(r"(?<=\d) (\d{2}:\d{2})$")


class QueryDateTime(UTCDateTime):
    """An RFC 3339 datetime in a query string.

    The ``+`` of an offset should be sent as ``%2B``; sent bare it arrives as
    a space, which is read back as ``+`` (``…T05:00:00 02:00``).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            value = _OFFSET_SIGN_AS_SPACE.sub(r"+\1", value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON ``true`` and ``false``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryBoolean(fields.Boolean):
    """Only ``true`` and ``false`` in a query string."""

    default_error_messages = {"invalid": "Must be 'true' or 'false'."}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if value == "true":
            return True
        if value == "false":
            return False
        raise self.make_error("invalid")


class WholeNumber(fields.Integer):
    """A JSON number without a fraction (``3`` or ``3.0``, as JSON Schema's
    ``integer``): not a boolean, not a string, not ``3.5``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class QueryInteger(fields.Integer):
    """A whole number in a query string: ASCII digits, an optional minus, nothing else."""

    default_error_messages = {"invalid": "Must be a whole number."}
    _DIGITS = re.compile(r"-?[0-9]{1,18}")

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if not isinstance(value, str) or self._DIGITS.fullmatch(value) is None:
            raise self.make_error("invalid")
        return int(value)


class IPAddress(fields.Field[str]):
    """An IPv4 or IPv6 address, stored in its canonical text form."""

    default_error_messages = {"invalid": "Not a valid IPv4 or IPv6 address."}

    def _serialize(self, value: str | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return value

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if not isinstance(value, str) or "%" in value:
            raise self.make_error("invalid")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self.make_error("invalid") from None


class JSONObject(fields.Dict):
    """A free JSON object with a bound on its serialised size and nesting depth."""

    default_error_messages = {
        "invalid": "Must be a JSON object.",
        "too_large": "Must be at most {max_bytes} bytes when serialised as JSON.",
        "too_deep": "Must nest at most {max_depth} levels deep.",
    }

    def __init__(self, *, max_bytes: int, max_depth: int, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), **kwargs)
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def check(self, value: dict[str, Any]) -> None:
        """Raise a ValidationError when ``value`` breaks the size or depth bound."""
        if _depth(value) > self.max_depth:
            raise self.make_error("too_deep", max_depth=self.max_depth)
        if len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) > self.max_bytes:
            raise self.make_error("too_large", max_bytes=self.max_bytes)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        self.check(value)
        return value


def _walk(value: Any) -> Any:
    """Yield ``(depth, item)`` for every value and key inside ``value``, without recursion."""
    stack = [(0, value)]
    while stack:
        depth, item = stack.pop()
        yield depth, item
        if isinstance(item, dict):
            stack.extend((depth + 1, key) for key in item)
            stack.extend((depth + 1, child) for child in item.values())
        elif isinstance(item, list):
            stack.extend((depth + 1, child) for child in item)


def _depth(value: Any) -> int:
    """How many objects and arrays nest inside each other in ``value``."""
    return max((depth + 1 for depth, item in _walk(value) if isinstance(item, dict | list)), default=0)


def unstorable_string(value: Any) -> bool:
    """True when ``value`` holds a string PostgreSQL cannot store (NUL, lone surrogates)."""
    for _, item in _walk(value):
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False
