"""API keys: who is calling, and may they write?

One app-level guard runs before any view, body or query parsing, so the
contract's order holds everywhere: authentication (401/403) first, then
validation, then state. It protects every path except the open operational
ones, so a route added later cannot forget it. The guard also counts the
request against the rate limit, before judging the key: failed
authentications count too.

Keys are compared in constant time (SHA-256 digests, every configured key
tried) and never logged; logs and idempotency records name a caller by the
key's fingerprint, the first 16 hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping

from flask import Flask, current_app, g, request

from service.errors import AuthenticationRequired, ReadOnlyApiKey
from service.observability.requests import note_caller
from service.security import ratelimit

log = logging.getLogger(__name__)

EXTENSION = "api_keys"
ANONYMOUS = "anonymous"
FINGERPRINT_LENGTH = 16
# Shorter keys can be guessed; they work, with a warning at start.
RECOMMENDED_LENGTH = 24

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/openapi.yaml"})
# The interactive docs and the assets they load.
OPEN_PREFIXES = ("/docs", "/static/")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def fingerprint(key: str) -> str:
    """A short, stable name for a key, safe to log."""
    return hashlib.sha256(key.encode()).hexdigest()[:FINGERPRINT_LENGTH]


class ApiKeys:
    """The configured keys, kept as SHA-256 digests with their write permission."""

    def __init__(self, keys: Mapping[str, bool]) -> None:
        self._entries = [(hashlib.sha256(key.encode()).digest(), can_write) for key, can_write in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def identify(self, presented: str) -> tuple[str, bool] | None:
        """The fingerprint and write permission of ``presented``, or None.

        Comparing fixed-length digests, and every one of them, keeps the time
        taken independent of which key matched and of how much of it did.
        """
        digest = hashlib.sha256(presented.encode(errors="surrogateescape")).digest()
        match: tuple[bytes, bool] | None = None
        for stored, can_write in self._entries:
            if hmac.compare_digest(stored, digest):
                match = (stored, can_write)
        if match is None:
            return None
        return match[0].hex()[:FINGERPRINT_LENGTH], match[1]


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a key (health, metrics, the spec, the docs)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def presented_key() -> str | None:
    """The key the request sends: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    # Read from the WSGI environ: an absent header costs no exception there.
    environ = request.environ
    authorization: str = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    presented: str = environ.get("HTTP_X_API_KEY", "")
    return presented.strip() or None


def current_key_identity() -> str:
    """Who the current request is, for scoping stored state (e.g. idempotency
    records): the API key's fingerprint, or ``"anonymous"`` when the service
    runs without keys."""
    fingerprint_: str | None = g.get("api_key_fingerprint")
    return fingerprint_ or ANONYMOUS


def _guard() -> None:
    if is_open(request.path):
        return
    keys: ApiKeys = current_app.extensions[EXTENSION]
    presented = presented_key()
    identified = keys.identify(presented) if keys and presented is not None else None
    if identified is not None:
        g.api_key_fingerprint = identified[0]
        note_caller(identified[0])
    ratelimit.check(f"key:{identified[0]}" if identified else f"address:{request.remote_addr}")
    if not keys:
        return
    if identified is None:
        raise AuthenticationRequired(
            "The API key is not valid." if presented is not None else AuthenticationRequired.detail
        )
    if not identified[1] and request.method not in READ_METHODS:
        raise ReadOnlyApiKey()


def init_app(app: Flask) -> None:
    """Load the keys and guard every request that is not open (with neither keys
    nor a rate limit configured there is nothing to guard)."""
    app.extensions[EXTENSION] = ApiKeys(app.config["API_KEYS"])
    for key in app.config["API_KEYS"]:
        if len(key) < RECOMMENDED_LENGTH:
            log.warning("API key %s is short: use random keys of %s+ characters", fingerprint(key), RECOMMENDED_LENGTH)
    if app.config["API_KEYS"] or app.config["RATE_LIMIT"]:
        app.before_request(_guard)
