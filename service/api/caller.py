"""Who is calling: the identity per-client state (idempotency keys) is scoped by."""

from __future__ import annotations

from flask import current_app, request

from service.keys import derived_key, keyed_fingerprint

ANONYMOUS = "anonymous"


def presented_api_key() -> str | None:
    """The key sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, if any."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def api_key_identity() -> str:
    """A keyed fingerprint of the caller's API key, or ``"anonymous"`` when the
    service runs without keys (or none was presented).

    The key itself is never stored: the fingerprint is an HMAC under a key
    derived from ``SECRET_KEY``, the same on every instance.
    """
    if not current_app.config["API_KEYS"]:
        return ANONYMOUS
    api_key = presented_api_key()
    if api_key is None:
        return ANONYMOUS
    return keyed_fingerprint(derived_key(current_app.config["SECRET_KEY"], "api-key-identity"), api_key.encode())
