"""Strict marshmallow fields for a JSON API.

marshmallow's defaults are lenient in ways an API contract is not: ``1`` is a
boolean, ``True`` an integer, a naive datetime is accepted. These fields take
exactly the JSON types the contract names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from marshmallow import ValidationError, fields

from service.operations.documents import DocumentBounds, walk

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
    """A free JSON object within ``bounds`` (serialised size, nesting depth)."""

    default_error_messages = {"invalid": "Must be a JSON object."}

    def __init__(self, *, bounds: DocumentBounds, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), **kwargs)
        self.bounds = bounds

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        violation = self.bounds.violation(value)
        if violation is not None:
            raise ValidationError(violation)
        return value


class JSONValue(fields.Raw):
    """Any JSON value (``null`` included) within ``bounds``: stored and returned as sent."""

    def __init__(self, *, bounds: DocumentBounds, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.bounds = bounds

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        violation = self.bounds.violation(value)
        if violation is not None:
            raise ValidationError(violation)
        return value


def unstorable_string(value: Any) -> bool:
    """True when ``value`` holds a string PostgreSQL cannot store (NUL, lone surrogates)."""
    for _, item in walk(value):
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False
