"""Redis, the optional shared store: one client per app, guarded by a breaker.

The read-through cache and the rate limiter reach Redis only through here.
Redis is never required: when ``REDIS_URL`` is unset, or Redis is down or
slow, callers get ``None`` (or an error they report with
:meth:`RedisLink.failed`) and carry on without it. After a failure the
process leaves Redis alone for ``REDIS_RETRY_INTERVAL`` seconds, so an outage
costs one short timeout now and then, not one on every request.

The breaker is local to each process on purpose: it holds no request state,
only this process's last experience of the network.

What a process owes Redis (an invalidation it could not deliver) is sent
before any other use of the link: a user registers it with
:meth:`RedisLink.before_use`, and :meth:`RedisLink.available` (which every
user asks first) and :meth:`RedisLink.ping` run it once Redis answers.

Commands go through ``service.cache.redis_connection`` (hiredis and a socket).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from flask import Flask, current_app

from service.cache.redis_address import RedisAddress
from service.cache.redis_connection import Argument, RedisConnection, RedisError, Script
from service.config import ConfigurationError
from service.observability import metrics

log = logging.getLogger(__name__)

EXTENSION = "redis"

CacheState = Literal["ok", "unavailable", "disabled"]


class RedisLink:
    """Redis with short timeouts, no retries, and a breaker.

    Each thread calls Redis on a connection of its own, made on its first
    call, never before a fork: threads do not queue behind each other's calls
    (only behind one that is sending what the process owes Redis), and
    ``REDIS_TIMEOUT_MS`` bounds every step of a call. Calls raise
    ``service.cache.redis_connection.RedisError``; callers report it with
    :meth:`failed` and carry on without Redis.
    """

    def __init__(self, url: str, *, timeout_seconds: float, retry_interval: float) -> None:
        self.address = RedisAddress.from_url(url)
        self.timeout_seconds = timeout_seconds
        self._local = threading.local()
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._before_use: list[Callable[[], bool]] = []

    @property
    def connection(self) -> RedisConnection:
        """This thread's connection (made, not yet connected, on its first use here)."""
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:  # a new thread, or a process forked since
            local.connection = RedisConnection(self.address, timeout_seconds=self.timeout_seconds)
            local.pid = pid
        connection: RedisConnection = local.connection
        return connection

    def command(self, *args: Argument) -> Any:
        """Send one command on this thread's connection and return its reply."""
        return self.connection.call(*args)

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Argument]) -> Any:
        """Run a Lua script on this thread's connection and return its reply."""
        return script.run(self.connection, keys, args)

    def before_use(self, settle: Callable[[], bool]) -> None:
        """Run ``settle`` before any other use of the link: it sends what is owed
        to Redis (cheaply returning True when nothing is), and returns False when
        it could not (having reported the failure with :meth:`failed`)."""
        self._before_use.append(settle)

    def available(self) -> bool:
        """False while the breaker is open (Redis failed less than the retry
        interval ago), or while what is owed to Redis cannot be sent."""
        if time.monotonic() < self._down_until:
            return False
        for settle in self._before_use:  # noqa: SIM110 (a loop, not all() of a generator: every cache hit runs it)
            if not settle():
                return False
        return True

    def down_for(self) -> float:
        """Seconds until the breaker lets callers try Redis again (0 when closed)."""
        return max(self._down_until - time.monotonic(), 0.0)

    def failed(self, operation: str, error: Exception) -> None:
        """Record a failed call: count it and open the breaker."""
        was_available = time.monotonic() >= self._down_until
        self._down_until = time.monotonic() + self.retry_interval
        metrics.REDIS_ERRORS.labels(operation=operation).inc()
        if was_available:
            # The URL may hold a password: the error's own words never quote it.
            log.warning(
                "redis unavailable during %s (%s: %s); going without it for %ss",
                operation,
                type(error).__name__,
                error,
                self.retry_interval,
            )

    def succeeded(self) -> None:
        """Record a successful call: close the breaker."""
        if self._down_until:
            self._down_until = 0.0
            log.info("redis is reachable again")

    def ping(self) -> bool:
        """Ask Redis directly, whatever the breaker says; update the breaker."""
        try:
            self.command("PING")
        except RedisError as error:
            self.failed("ping", error)
            return False
        self.succeeded()
        return all(settle() for settle in self._before_use)


def init_app(app: Flask) -> None:
    """Make the app's Redis link when ``REDIS_URL`` is set (no connection yet)."""
    url = app.config["REDIS_URL"]
    if url:
        try:
            link = RedisLink(
                url,
                timeout_seconds=app.config["REDIS_TIMEOUT_MS"] / 1000,
                retry_interval=app.config["REDIS_RETRY_INTERVAL"],
            )
        except ValueError as error:  # its message never quotes the URL, which may hold a password
            raise ConfigurationError(str(error)) from None
        app.extensions[EXTENSION] = link


def redis_link(app: Flask | None = None) -> RedisLink | None:
    """The app's Redis link, or None when ``REDIS_URL`` is unset."""
    link: RedisLink | None = (app or current_app).extensions.get(EXTENSION)
    return link


def cache_state() -> CacheState:
    """What ``/readyz`` reports: ``disabled``, ``ok`` or ``unavailable`` (never fatal)."""
    link = redis_link()
    if link is None:
        return "disabled"
    return "ok" if link.ping() else "unavailable"
