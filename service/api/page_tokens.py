"""Page tokens: opaque, signed cursors bound to the query they were issued for.

A token carries the keyset where its page ended and a digest of the filters
and sort of its listing, signed with the app's ``SECRET_KEY`` (itsdangerous),
so every instance that shares the key accepts every other instance's tokens.
Tokens never expire by time. One that was forged, altered, signed with
another key, or comes back with other filters or another sort is refused:
a cursor is only meaningful in the order and among the rows it came from.
``limit`` and ``count`` are not part of the binding, so they may change.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from flask import current_app
from itsdangerous import BadData, Signer, URLSafeSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import HMACAlgorithm

from service.errors import QueryValidationError
from service.repositories.query import Keyset
from service.schemas.fields import format_datetime, parse_datetime

PAGE_TOKEN_PARAMETER = "page_token"  # noqa: S105 (a parameter name, not a secret)
TOKEN_FORMAT = 1
_SALT = "user-sessions.page-token"


class InvalidPageToken(QueryValidationError):
    """A page token this service did not issue for this very listing."""

    def __init__(self, reason: str) -> None:
        super().__init__(errors={PAGE_TOKEN_PARAMETER: [reason]})


def scope_digest(scope: Mapping[str, Any]) -> str:
    """A short, stable digest of the parameters a token is bound to.

    Remembered for the scopes seen lately (an agent pages the same session's
    items again and again), by their orjson form: about 3 µs inside a
    request, where the canonical form and its SHA-256 take 28 µs. orjson
    hands datetimes and whatever JSON lacks to ``str``, as the canonical
    form does, so two scopes share a form only if they share a digest.
    """
    try:
        form = orjson.dumps(scope, option=_SCOPE_FORM, default=str)
    except orjson.JSONEncodeError:  # keys other than strings: not remembered
        return _digest(scope)
    digest = _DIGESTS.get(form)
    if digest is None:
        if len(_DIGESTS) >= DIGESTS_KEPT:
            _DIGESTS.clear()
        digest = _DIGESTS[form] = _digest(scope)
    return digest


def _digest(scope: Mapping[str, Any]) -> str:
    canonical = json.dumps(scope, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:16]).decode().rstrip("=")


DIGESTS_KEPT = 1024
_DIGESTS: dict[bytes, str] = {}
_SCOPE_FORM = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _KeyedHMAC(HMACAlgorithm):
    """itsdangerous's HMAC-SHA1, from an HMAC keyed once and copied for each
    token: 4 µs inside a request. Its own builds the HMAC in Python around
    two fresh hash objects (7 µs), and ``hmac.digest`` looks OpenSSL's
    algorithms up on every call (22 µs)."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha1)
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = self._keyed[key] = hmac.new(key, digestmod="sha1")
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


class _TokenSigner(Signer):
    """The signer the serializer makes for every token (the same salt, key
    derivation and HMAC-SHA1), made once, with its key derived once."""

    @functools.cached_property
    def _derived_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._derived_key if secret_key is None else super().derive_key(secret_key)


@functools.lru_cache(maxsize=4)
def _serializer_for(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_SALT)


def _secret(secret_key: str | None) -> str:
    """The key tokens are signed with: the one given, else the app's ``SECRET_KEY``."""
    key: str = secret_key or current_app.config["SECRET_KEY"]
    return key


@functools.lru_cache(maxsize=4)
def _signer_for(secret_key: str) -> Signer:
    return _TokenSigner(secret_key, salt=_SALT, algorithm=_KeyedHMAC())


def _encode_value(value: Any) -> list[str]:
    if isinstance(value, datetime):
        return ["t", format_datetime(value)]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, int) and not isinstance(value, bool):
        return ["i", str(value)]
    raise TypeError(f"a page token cannot carry a {type(value).__name__}")


def _decode_value(item: Any) -> Any:
    kind, text = item
    if kind == "t":
        return parse_datetime(text)
    if kind == "u":
        return uuid.UUID(hex=text)
    if kind == "i":
        return int(text)
    raise ValueError(f"unknown value kind {kind!r}")


def make_page_token(keyset: Keyset, scope: Mapping[str, Any], *, secret_key: str | None = None) -> str:
    """The token of the page that starts after ``keyset`` in the listing ``scope`` describes."""
    payload = {"v": TOKEN_FORMAT, "s": scope_digest(scope), "k": [_encode_value(value) for value in keyset.values]}
    # What the serializer's dumps() writes (compact JSON, in base64, signed), without its layers:
    # a payload of ASCII strings and lists is the same bytes from orjson as from json. Nor does
    # it try zlib first, as dumps() does: a digest and a keyset never shrink by enough to matter,
    # and the try alone cost nearly as much as the rest. A compressed token, issued before, still reads.
    return _signer_for(_secret(secret_key)).sign(base64_encode(orjson.dumps(payload))).decode()


def read_page_token(token: str, scope: Mapping[str, Any], *, secret_key: str | None = None) -> Keyset:
    """The keyset in ``token``; ``InvalidPageToken`` unless it was issued for ``scope``."""
    try:
        payload = _serializer_for(_secret(secret_key)).loads(token)
    except BadData:
        raise InvalidPageToken("Not a page token this service issued; start again from the first page.") from None
    try:
        if payload["v"] != TOKEN_FORMAT:
            raise ValueError("another token format")
        digest = payload["s"]
        keyset = Keyset(tuple(_decode_value(item) for item in payload["k"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidPageToken("This page token is no longer understood; start again from the first page.") from None
    if digest != scope_digest(scope):
        raise InvalidPageToken(
            "This page token belongs to a listing with other filters or another sort; "
            "send the same parameters as for the first page (only limit and count may change)."
        )
    return keyset
