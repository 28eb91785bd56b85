"""Which sessions are worth asking Redis for: those this process read lately.

A cache pays for itself on sessions read again and again (an agent reads its
active sessions on every turn). A session read once in a while costs a
Redis lookup that misses and a store that is never read: with reads spread
over many sessions, Redis would make every read slower. So a session is
looked up, and stored, only from its ``min_reads``-th read in this process
within the recent past (as nginx's ``proxy_cache_min_uses``).

This decides only whether to ask Redis; what is answered never depends on
it (a session not asked for is read from the database).
"""

from __future__ import annotations

import uuid

# Sessions remembered: two generations of half as many each, so the memory
# it takes stays bounded (about 150 bytes a session) whatever the traffic.
DEFAULT_CAPACITY = 4096


class RecentReads:
    """How often each session was read lately, in this process."""

    def __init__(self, min_reads: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self.min_reads = min_reads
        self._generation_size = max(capacity // 2, 1)
        self._current: dict[uuid.UUID, int] = {}
        self._previous: dict[uuid.UUID, int] = {}

    def read(self, user_session_uuid: uuid.UUID) -> bool:
        """Count one read of the session; True when it is read often enough to ask the cache."""
        if self.min_reads <= 1:
            return True
        count = (self._current.get(user_session_uuid) or self._previous.get(user_session_uuid, 0)) + 1
        self._current[user_session_uuid] = count
        if len(self._current) >= self._generation_size:
            # Threads may race here: at worst a count is lost, and a session is asked for one read later.
            self._previous, self._current = self._current, {}
        return count >= self.min_reads

    def admitted(self, user_session_uuid: uuid.UUID) -> bool:
        """Whether the session's reads so far make it worth storing (does not count a read)."""
        if self.min_reads <= 1:
            return True
        count = self._current.get(user_session_uuid) or self._previous.get(user_session_uuid, 0)
        return count >= self.min_reads
