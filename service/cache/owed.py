"""Invalidations Redis did not take, and the sessions this instance must not
read from Redis until they land.

A write is acknowledged whether or not Redis took its invalidation (Redis is
optional). When Redis is down, or slower than ``REDIS_TIMEOUT_MS``, the
invalidation is *owed*:

- :class:`OwedInvalidations` keeps it, in this process (bounded), and the
  cache sends what it owes before any other use of the link (a lookup, a
  store, the rate limiter, ``/readyz``'s ping) once the breaker lets it try
  again: so it lands first thing once Redis answers.
- :class:`UnsettledSessions` marks the session on this instance until the
  invalidation lands, for ``CACHE_TTL`` at most: every worker forked from the
  process that made the app shares the marks, and reads a marked session
  from the database. So the
  instance that acknowledged the write never answers the copy it replaced,
  whichever of its workers is asked, while other instances may for
  ``CACHE_TTL`` at most (the entry was stored before the write and lives
  that long).

An owed invalidation is kept no longer than a copy it could matter to may
live: an entry stored before the write lapses within ``CACHE_TTL``, and one
stored by a request that read before the write (no fence stopped it) within
``FENCE_SECONDS`` more.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)

# Sessions whose invalidation one process may owe at once; the oldest go first beyond it.
DEFAULT_CAPACITY = 10_000
# Marks are kept per bucket of uuids: a mark costs a few database reads of the
# sessions that share its bucket, never a wrong answer.
DEFAULT_BUCKETS = 4096


class OwedInvalidations:
    """The invalidations this process could not deliver: ``{uuid: version}``
    (None: erased), oldest first, each until it is delivered or outlives any
    copy it could matter to."""

    def __init__(self, *, keep_seconds: float, capacity: int = DEFAULT_CAPACITY) -> None:
        self.keep_seconds = keep_seconds
        self.capacity = capacity
        # Held while invalidations are sent, so each is sent by one thread and
        # taken off only once Redis has it.
        self.sending = threading.Lock()
        self._lock = threading.Lock()
        self._owed: dict[uuid.UUID, tuple[int | None, float]] = {}
        self._dropped = 0

    def __bool__(self) -> bool:
        return bool(self._owed)

    def __len__(self) -> int:
        return len(self._owed)

    def add(self, versions: Mapping[uuid.UUID, int | None]) -> None:
        """Owe these invalidations too (a session owed already keeps the higher version)."""
        now = time.monotonic()
        with self._lock:
            for user_session_uuid, version in versions.items():
                known = self._owed.pop(user_session_uuid, None)
                if known is not None:
                    version = None if known[0] is None or version is None else max(known[0], version)
                self._owed[user_session_uuid] = (version, now + self.keep_seconds)
            while len(self._owed) > self.capacity:
                del self._owed[next(iter(self._owed))]
                self._dropped += 1
                if self._dropped == 1:
                    log.warning("more than %s cache invalidations owed to Redis; dropping the oldest", self.capacity)

    def due(self, limit: int) -> dict[uuid.UUID, int | None]:
        """Up to ``limit`` owed invalidations, oldest first (forgetting those past their time)."""
        now = time.monotonic()
        with self._lock:
            for user_session_uuid in [key for key, (_, until) in self._owed.items() if until <= now]:
                del self._owed[user_session_uuid]
            due: dict[uuid.UUID, int | None] = {}
            for user_session_uuid, (version, _) in self._owed.items():
                if len(due) == limit:
                    break
                due[user_session_uuid] = version
            return due

    def owes(self, user_session_uuid: uuid.UUID) -> bool:
        return user_session_uuid in self._owed

    def delivered(self, versions: Mapping[uuid.UUID, int | None]) -> None:
        """Redis took these: stop owing them (unless a later write is owed meanwhile)."""
        with self._lock:
            for user_session_uuid, version in versions.items():
                known = self._owed.get(user_session_uuid)
                if known is not None and known[0] == version:
                    del self._owed[user_session_uuid]
            if not self._owed:
                self._dropped = 0


class SharedLock:
    """A lock between the processes forked after it was made, and between their
    threads: a POSIX record lock on a file of its own, in memory where Linux
    offers it (such locks belong to a process, so a thread lock goes with it).
    ``multiprocessing``'s lock would do the same, at 0.3 MiB more in every
    worker for the package."""

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):
            self._fd = os.memfd_create("user-sessions-lock")
        else:
            self._fd, path = tempfile.mkstemp()
            os.unlink(path)
        self._threads = threading.Lock()

    def __enter__(self) -> None:
        self._threads.acquire()
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)
        self._threads.release()


class UnsettledSessions:
    """Sessions not to read from Redis on this instance: marks in memory shared
    by every process forked after it was made (gunicorn's workers, from the
    master that loaded the app).

    Marks are kept per bucket of uuids, as a count and a deadline: a process
    counts a session in when Redis did not take its invalidation and out once
    Redis has it, so a bucket is clear as soon as nothing in it is owed; the
    deadline (``time.monotonic``, one clock for every process of the machine)
    bounds a count that a worker killed mid-way never took back. Changes take
    a lock shared by those processes; a read takes none.
    """

    def __init__(self, buckets: int = DEFAULT_BUCKETS) -> None:
        if buckets & (buckets - 1):
            raise ValueError("buckets must be a power of two")
        self._mask = buckets - 1
        # Anonymous and shared: inherited by forked workers. Two doubles a bucket: count, deadline.
        self._memory = mmap.mmap(-1, buckets * 16)
        self._marks = memoryview(self._memory).cast("d")
        self._lock = SharedLock()

    def mark(self, user_session_uuids: Iterable[uuid.UUID], seconds: float, *, count: bool = True) -> None:
        """Read these sessions from the database on this instance, until they are
        settled or for ``seconds`` at most (``count=False``: only push the deadline)."""
        until = time.monotonic() + seconds
        marks = self._marks
        with self._lock:
            for user_session_uuid in user_session_uuids:
                slot = 2 * (user_session_uuid.int & self._mask)
                if count:
                    marks[slot] += 1
                if marks[slot + 1] < until:
                    marks[slot + 1] = until

    def settle(self, user_session_uuids: Iterable[uuid.UUID]) -> None:
        """Redis has these sessions' invalidations: count them out."""
        marks = self._marks
        with self._lock:
            for user_session_uuid in user_session_uuids:
                slot = 2 * (user_session_uuid.int & self._mask)
                marks[slot] = max(marks[slot] - 1, 0)

    def marked(self, user_session_uuid: uuid.UUID) -> bool:
        """Whether the session (or one in its bucket) is marked now."""
        slot = 2 * (user_session_uuid.int & self._mask)
        marks = self._marks
        return marks[slot] > 0 and marks[slot + 1] > time.monotonic()
