"""``RATE_LIMIT``: requests per API key (per client address without one).

Fixed windows, counted in Redis when ``REDIS_URL`` is set, so every worker
and every instance shares one count per key. Without Redis each process
counts on its own (fine for one process; with N workers a key may make up to
N times the limit). When Redis is down the limiter fails open to those
per-process counts: never a 5xx, and a flood is still bounded.

:func:`check` is called by the authentication guard, before the key is
judged, so a failed authentication counts as well.

In Redis every limit is a counter that lives one window from the request
that starts it (as ``limits``' Redis storage keeps them): one script call
counts a request against every limit, stopping at the first one it exceeds.

The ``limits`` package (parsing ``RATE_LIMIT`` and the per-process counts) is
imported only when ``RATE_LIMIT`` is set: a service without a rate limit never
loads it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Flask, current_app

from service.cache.redis_connection import Argument, RedisError, Script
from service.cache.redis_link import redis_link
from service.errors import RateLimited

if TYPE_CHECKING:
    from limits import RateLimitItem

    from service.cache.redis_link import RedisLink

EXTENSION = "rate_limiter"
REDIS_KEY_PREFIX = "user-sessions:rate-limit"

# KEYS: one counter per limit. ARGV: each limit's window (ms) and amount, in pairs.
# Counts the request against each limit in turn; at the first it exceeds, returns
# the milliseconds until that window ends (-1 when none is exceeded).
_HIT = Script("""
for i = 1, #KEYS do
  local window = tonumber(ARGV[2 * i - 1])
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then
    redis.call('PEXPIRE', KEYS[i], window)
  end
  if count > tonumber(ARGV[2 * i]) then
    local left = redis.call('PTTL', KEYS[i])
    if left < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      left = window
    end
    return left
  end
end
return -1
""")


class RequestRateLimiter:
    """The configured limits, counted in Redis when there is one, else here."""

    def __init__(self, limits: list[RateLimitItem], link: RedisLink | None) -> None:
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        self.limits = limits
        self.link = link
        self.local = FixedWindowRateLimiter(MemoryStorage())
        self.windows: list[Argument] = []
        for limit in limits:
            self.windows += [limit.get_expiry() * 1000, limit.amount]

    def check(self, bucket: str) -> None:
        """Count one request in ``bucket``; raise :class:`RateLimited` past a limit."""
        if self.link is not None and self.link.available():
            try:
                left_ms = self.link.run(_HIT, self.redis_keys(bucket), self.windows)
            except RedisError as error:
                self.link.failed("rate_limit", error)
            else:
                self.link.succeeded()
                if left_ms >= 0:
                    raise RateLimited(left_ms / 1000)
                return
        self._hit_here(bucket)

    def redis_keys(self, bucket: str) -> list[str]:
        """The bucket's counter of each limit (in one hash tag: one Redis Cluster slot)."""
        return [f"{REDIS_KEY_PREFIX}:{{{bucket}}}:{limit.key_for()}" for limit in self.limits]

    def _hit_here(self, bucket: str) -> None:
        """Count in this process, as without Redis (or while it is away)."""
        for limit in self.limits:
            if not self.local.hit(limit, bucket):
                reset_time = self.local.get_window_stats(limit, bucket).reset_time
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
