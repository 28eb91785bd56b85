"""``RATE_LIMIT``: requests per API key (per client address without one).

Fixed windows, counted in Redis when ``REDIS_URL`` is set, so every worker
and every instance shares one count per key. Without Redis each process
counts on its own (fine for one process; with N workers a key may make up to
N times the limit). When Redis is down the limiter fails open to those
per-process counts: never a 5xx, and a flood is still bounded.

:func:`check` is called by the authentication guard, before the key is
judged, so a failed authentication counts as well.

The ``limits`` package is imported only when ``RATE_LIMIT`` is set: a service
without a rate limit never loads it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Flask, current_app

from service.cache.redis_link import redis_link
from service.errors import RateLimited

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import FixedWindowRateLimiter

    from service.cache.redis_link import RedisLink

EXTENSION = "rate_limiter"
REDIS_KEY_PREFIX = "user-sessions:rate-limit"


class RequestRateLimiter:
    """The configured limits, counted in Redis when there is one, else here."""

    def __init__(self, limits: list[RateLimitItem], link: RedisLink | None) -> None:
        from limits.storage import MemoryStorage, RedisStorage
        from limits.strategies import FixedWindowRateLimiter

        self.limits = limits
        self.link = link
        self.local = FixedWindowRateLimiter(MemoryStorage())
        self.shared = (
            FixedWindowRateLimiter(
                RedisStorage(
                    "redis://",  # the connection comes from the link's pool, with its timeouts
                    connection_pool=link.pool,
                    key_prefix=REDIS_KEY_PREFIX,
                )
            )
            if link is not None
            else None
        )

    def check(self, bucket: str) -> None:
        """Count one request in ``bucket``; raise :class:`RateLimited` past a limit."""
        if self.shared is not None and self.link is not None and self.link.available():
            import redis  # loaded by the link

            try:
                self._hit(self.shared, bucket)
            except redis.RedisError as error:
                self.link.failed("rate_limit", error)
            else:
                self.link.succeeded()
                return
        self._hit(self.local, bucket)

    def _hit(self, limiter: FixedWindowRateLimiter, bucket: str) -> None:
        for limit in self.limits:
            if not limiter.hit(limit, bucket):
                reset_time = limiter.get_window_stats(limit, bucket).reset_time
                raise RateLimited(reset_time - time.time())


def init_app(app: Flask) -> None:
    """Set up the limiter when ``RATE_LIMIT`` is set (after ``cache.init_app``)."""
    spec = app.config["RATE_LIMIT"]
    if spec:
        from limits import parse_many

        app.extensions[EXTENSION] = RequestRateLimiter(parse_many(spec), redis_link(app))


def check(bucket: str) -> None:
    """Count the current request against ``bucket``, when a limit is configured."""
    limiter: RequestRateLimiter | None = current_app.extensions.get(EXTENSION)
    if limiter is not None:
        limiter.check(bucket)
