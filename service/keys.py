"""Keys derived from ``SECRET_KEY``, one per purpose, and keyed fingerprints.

Every secret-dependent hash in the service uses its own derived key, so a
value computed for one purpose (a verification code's hash, an API key's
fingerprint) can never be mistaken for, or replayed as, another.
"""

from __future__ import annotations

import hashlib
import hmac


def derived_key(secret_key: str, purpose: str) -> bytes:
    """A 256-bit key for ``purpose``, derived from ``secret_key`` with HMAC-SHA256."""
    return hmac.new(secret_key.encode(), f"user-sessions/{purpose}".encode(), hashlib.sha256).digest()


def keyed_fingerprint(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` as 64 hex digits: without the key, it reveals nothing."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()
