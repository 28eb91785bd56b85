"""What the cache holds of a session: the exact 200 body of a live session,
with the version and ``expires_at`` it was read at, as one Redis value."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.models import entity_tag

CONTENT_TYPE = "application/json"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NO_EXPIRY = b"-"


@dataclass(frozen=True)
class Representation:
    """The 200 body of a live session, with what a response and the cache need of
    it. ``shape`` names the layout of the body (its fields): a reader takes an
    entry of its own shape only, so a release that adds a field never answers
    bodies an earlier release stored."""

    version: int
    expires_at_us: int | None
    shape: str
    body: bytes

    @property
    def etag(self) -> str:
        return entity_tag(self.version)

    def expired(self, now_us: int) -> bool:
        """Past ``expires_at``: the session counts as deleted (as ``UserSession.is_live``)."""
        return self.expires_at_us is not None and self.expires_at_us <= now_us

    def encode(self) -> bytes:
        """``version\\nexpires_at_us or -\\nshape\\n`` and the body, as stored in Redis."""
        expires = _NO_EXPIRY if self.expires_at_us is None else str(self.expires_at_us).encode()
        return b"%d\n%s\n%s\n%s" % (self.version, expires, self.shape.encode(), self.body)

    @classmethod
    def decode(cls, value: bytes) -> Representation | None:
        """The stored entry, or None when it is not one this code wrote."""
        try:
            version, expires, shape, body = value.split(b"\n", 3)
            return cls(int(version), None if expires == _NO_EXPIRY else int(expires), shape.decode(), body)
        except (ValueError, UnicodeDecodeError):
            return None


def epoch_microseconds(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, no float)."""
    return (moment - _EPOCH) // _MICROSECOND


def now_us() -> int:
    """The wall clock in epoch microseconds: what a cached ``expires_at`` is judged by."""
    return time.time_ns() // 1000
