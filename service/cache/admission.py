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

# Reads remembered: two generations of half as many each.
DEFAULT_CAPACITY = 4096
# Counters a generation holds. Sessions share a counter by the low bits of their uuid (random in a
# uuid4): two that collide are counted together, which at worst asks Redis one read early. With
# up to 4,096 reads remembered, at most 6 % of first reads collide.
DEFAULT_SLOTS = 1 << 16
_MAX_COUNT = 255


class RecentReads:
    """How often each session was read lately, in this process: counters in two
    fixed arrays, so memory is the same (128 KiB) whatever the traffic, and no
    uuid is kept."""

    def __init__(self, min_reads: int, capacity: int = DEFAULT_CAPACITY, slots: int = DEFAULT_SLOTS) -> None:
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self.min_reads = min_reads
        self._generation_size = max(capacity // 2, 1)
        self._mask = slots - 1
        self._current = bytearray(slots)
        self._previous = bytearray(slots)
        self._reads = 0  # into the current generation

    def read(self, user_session_uuid: uuid.UUID) -> bool:
        """Count one read of the session; True when it is read often enough to ask the cache."""
        if self.min_reads <= 1:
            return True
        slot = user_session_uuid.int & self._mask
        current = self._current
        count = min((current[slot] or self._previous[slot]) + 1, _MAX_COUNT)
        current[slot] = count
        self._reads += 1
        if self._reads >= self._generation_size:
            # Threads may race here: at worst a count is lost, and a session is asked for one read later.
            self._previous, self._current, self._reads = current, bytearray(len(current)), 0
        return count >= self.min_reads

    def admitted(self, user_session_uuid: uuid.UUID) -> bool:
        """Whether the session's reads so far make it worth storing (does not count a read)."""
        if self.min_reads <= 1:
            return True
        slot = user_session_uuid.int & self._mask
        return (self._current[slot] or self._previous[slot]) >= self.min_reads
