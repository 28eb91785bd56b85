"""The read-through cache of ``GET /user-sessions/{uuid}``, shared in Redis by
every worker and instance.

An entry is the exact response body of a live session, with the version and
``expires_at`` it was read at, so a hit answers without the ORM or a schema
dump. Entries live ``CACHE_TTL`` seconds at most (less when the session
expires sooner).

No stale read after an acknowledged write: every write, once committed and
before it is answered, *invalidates* its sessions (``service.cache.invalidation``):
it deletes the entry and raises the session's *fence* to the version it
committed (``gone`` for an erased session). A reader stores what it read only
through a Lua script that refuses a version below the fence or below the
entry already there. So the classic race (a reader misses, reads version 1,
a writer commits version 2 and invalidates, then the reader stores version 1)
ends with the store refused. A fence outlives any request that could have
read before the write (``FENCE_SECONDS``); ``gone`` is never lowered, so a
reader of an erased session cannot bring it back, even if its uuid is created
again meanwhile (that new session is read from the database until the fence
lapses).

Redis is optional: every call goes through the app's ``RedisLink`` (short
timeout, no retries, a breaker), a failure is counted and the caller carries
on with the database. Reads respect the breaker; invalidations try Redis even
while it is open, since an invalidation skipped on one instance would let
every other instance serve the old version. An invalidation Redis does not
take (down, or slower than its timeout) is owed (``service.cache.owed``):
kept, and sent again before any other use of the link once the breaker
allows (a lookup, a store, the rate limiter, ``/readyz``); until it lands
this instance reads the session from the database, so it never answers the
copy the write replaced, and other instances may, for ``CACHE_TTL`` at most.

Keys name a session by a digest of its uuid, never the uuid itself (an
erased session's fence outlives it by ``FENCE_SECONDS``, and must not keep
its uuid), in a hash tag, so an entry and its fence share a Redis Cluster
slot, as a script's keys must.

Of the cache, only a :class:`UserSessionCache` calls Redis, and one is made
only when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flask import Flask, current_app

from service.cache.admission import RecentReads
from service.cache.entries import Representation, now_us
from service.cache.owed import OwedInvalidations, UnsettledSessions
from service.cache.redis_connection import RedisError, Script
from service.cache.redis_link import redis_link
from service.observability import metrics

if TYPE_CHECKING:
    from service.cache.redis_link import RedisLink

EXTENSION = "user_session_cache"
# v2: sessions named by a digest of their uuid (v1 held the uuid itself).
KEY_PREFIX = "user-sessions:v2"
# Longer than any request may run (gunicorn's worker timeout is 30 s): a
# reader that read before a write cannot store after the write's fence lapsed.
FENCE_SECONDS = 60
# The fence of an erased session: no version passes it.
GONE = "gone"
# Sessions invalidated by one script call (owed ones pile up while Redis is away).
INVALIDATE_BATCH = 256


# KEYS: entry, fence. ARGV: version, entry lifetime (ms), entry value, its shape.
# Stores only a version at or above the fence and above the entry there (of
# the same shape: an entry of another shape is replaced).
_STORE = """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence and (fence == 'gone' or tonumber(fence) > version) then
  return 0
end
local head = redis.call('GETRANGE', KEYS[1], 0, 99)
local stored, shape = string.match(head, '^(%d+)\\n[^\\n]*\\n([^\\n]*)\\n')
if stored and shape == ARGV[4] and tonumber(stored) >= version then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return 1
"""
_STORE_SCRIPT = Script(_STORE)

# KEYS: entry and fence of each session, in pairs. ARGV: fence lifetime (ms),
# then each session's committed version, or 'gone'.
# Deletes every entry first, then raises each fence; a fence is never lowered.
# (Redis out of memory under ``noeviction`` refuses a script's first write
# only if it is a SET: DEL goes first, and the fences follow it.)
_INVALIDATE = """
local sessions = #KEYS / 2
for i = 1, sessions do
  redis.call('DEL', KEYS[2 * i - 1])
end
for i = 1, sessions do
  local fence_key, fence = KEYS[2 * i], ARGV[i + 1]
  local current = redis.call('GET', fence_key)
  if current == 'gone' then
    fence = 'gone'
  elseif current and fence ~= 'gone' and tonumber(current) > tonumber(fence) then
    fence = current
  end
  redis.call('SET', fence_key, fence, 'PX', ARGV[1])
end
return sessions
"""
_INVALIDATE_SCRIPT = Script(_INVALIDATE)


def key_tag(user_session_uuid: uuid.UUID) -> str:
    """What names a session in Redis: 128 bits of a BLAKE2b digest of its uuid, in hex."""
    return hashlib.blake2b(user_session_uuid.bytes, digest_size=16, person=b"user-sessions").hexdigest()


class UserSessionCache:
    """Lookups, fenced stores and invalidations of session representations."""

    def __init__(
        self,
        link: RedisLink,
        *,
        ttl_seconds: int,
        min_reads: int = 1,
        unsettled: UnsettledSessions | None = None,
    ) -> None:
        self.link = link
        self.recent_reads = RecentReads(min_reads)
        self.ttl_seconds = ttl_seconds
        self.ttl_ms = ttl_seconds * 1000
        self.fence_ms = FENCE_SECONDS * 1000
        self.owed = OwedInvalidations(keep_seconds=ttl_seconds + FENCE_SECONDS)
        self.unsettled = unsettled or UnsettledSessions()
        # The sessions this process counted in ``unsettled`` and has not counted out.
        self._marked: set[uuid.UUID] = set()
        link.before_use(self._settle)

    @staticmethod
    def entry_key(user_session_uuid: uuid.UUID) -> str:
        return f"{KEY_PREFIX}:{{{key_tag(user_session_uuid)}}}"

    @staticmethod
    def fence_key(user_session_uuid: uuid.UUID) -> str:
        return UserSessionCache.keys(user_session_uuid)[1]

    @staticmethod
    def keys(user_session_uuid: uuid.UUID) -> tuple[str, str]:
        """The session's entry key and fence key (one digest of its uuid)."""
        entry = UserSessionCache.entry_key(user_session_uuid)
        return entry, f"{entry}:fence"

    def lookup(self, user_session_uuid: uuid.UUID, shape: str) -> Representation | None:
        """The cached representation of this ``shape``, or None (a session this
        process has not read often enough lately, one whose invalidation Redis
        has not taken yet, a miss, an entry of another shape, Redis down, or
        its breaker open)."""
        if not self.recent_reads.read(user_session_uuid):
            metrics.record_cache_request("cold")
            return None
        if self.unsettled.marked(user_session_uuid):
            metrics.record_cache_request("owed")
            return None
        if not self.link.available():
            metrics.record_cache_request("error")
            return None
        try:
            value = self.link.command("GET", self.entry_key(user_session_uuid))
        except RedisError as error:
            self.link.failed("cache_lookup", error)
            metrics.record_cache_request("error")
            return None
        self.link.succeeded()
        representation = Representation.decode(value) if isinstance(value, bytes) else None
        if representation is not None and representation.shape != shape:
            representation = None
        metrics.record_cache_request("miss" if representation is None else "hit")
        return representation

    def store(self, user_session_uuid: uuid.UUID, representation: Representation) -> bool:
        """Keep ``representation`` unless the fence or a newer entry forbids it, or the
        session is not read often enough here to be worth it; True when kept."""
        if not self.recent_reads.admitted(user_session_uuid):
            return False
        lifetime_ms = self.ttl_ms
        if representation.expires_at_us is not None:
            lifetime_ms = min(lifetime_ms, (representation.expires_at_us - now_us()) // 1000)
            if lifetime_ms <= 0:
                return False
        if not self.link.available():
            return False
        try:
            stored = self.link.run(
                _STORE_SCRIPT,
                keys=self.keys(user_session_uuid),
                args=[representation.version, lifetime_ms, representation.encode(), representation.shape],
            )
        except RedisError as error:
            self.link.failed("cache_store", error)
            return False
        self.link.succeeded()
        return bool(stored)

    def invalidate(self, versions: Mapping[uuid.UUID, int | None]) -> bool:
        """Drop the entries of sessions committed at these versions (None: erased)
        and fence off older ones, after whatever invalidations are owed. Tries
        Redis whatever its breaker says; True when Redis took it.

        When Redis does not take it, the invalidation is owed (sent again
        before any other use of the link, once the breaker allows), and the
        sessions are read from the database on this instance until it lands,
        for ``CACHE_TTL`` at most: returning, the write may be acknowledged.
        """
        if not versions:
            return True
        if not self.owed:  # the usual case: nothing owed before it, one round trip
            if self._send(versions):
                return True
            self.owed.add(versions)
        else:
            self.owed.add(versions)
            if self.send_owed():
                return True
        with self.owed.sending:
            fresh = [user_session_uuid for user_session_uuid in versions if user_session_uuid not in self._marked]
            self.unsettled.mark(fresh, self.ttl_seconds)
            self.unsettled.mark(versions.keys() - fresh, self.ttl_seconds, count=False)
            self._marked.update(fresh)
        return False

    def send_owed(self) -> bool:
        """Send every owed invalidation, oldest first; True when none is left.
        A failure is counted and opens the breaker; what was not sent stays owed."""
        with self.owed.sending:
            while True:
                due = self.owed.due(INVALIDATE_BATCH)
                if not due:
                    return True
                if not self._send(due):
                    return False  # owed until Redis takes it
                self.owed.delivered(due)
                # Count out what this process marked and owes no more (delivered, or past keeping).
                settled = [marked for marked in self._marked if not self.owed.owes(marked)]
                if settled:
                    self.unsettled.settle(settled)
                    self._marked.difference_update(settled)

    def _send(self, versions: Mapping[uuid.UUID, int | None]) -> bool:
        """One invalidation script call for these sessions; True when Redis took it (a failure
        is counted, logged and opens the breaker).

        Every write pays this round trip before it is answered; a server that lost the
        script gets it whole again.
        """
        keys: list[str] = []
        args: list[int | str] = [self.fence_ms]
        for user_session_uuid, version in versions.items():
            keys += self.keys(user_session_uuid)
            args.append(GONE if version is None else version)
        try:
            self.link.run(_INVALIDATE_SCRIPT, keys, args)
        except RedisError as error:
            self.link.failed("cache_invalidate", error)
            return False
        self.link.succeeded()
        return True

    def _settle(self) -> bool:
        """The link's before-use hook: nothing owed costs a truth test."""
        return not self.owed or self.send_owed()


def init_app(app: Flask) -> None:
    """Make the cache when Redis is configured (after ``service.cache.redis_link.init_app``)."""
    link = redis_link(app)
    if link is not None:
        # Made here, in the process that loads the app (gunicorn's master): its
        # marks are shared by every worker forked from it.
        app.extensions[EXTENSION] = UserSessionCache(
            link,
            ttl_seconds=app.config["CACHE_TTL"],
            min_reads=app.config["CACHE_MIN_READS"],
            unsettled=UnsettledSessions(),
        )


def user_session_cache(app: Flask | None = None) -> UserSessionCache | None:
    """The app's cache, or None when ``REDIS_URL`` is unset."""
    cache: UserSessionCache | None = (app or current_app).extensions.get(EXTENSION)
    return cache
