"""Connections spread evenly over the workers.

A kept-alive connection stays with the worker that accepted it, and which
worker accepts is a race; with every client keeping its connection, a worker
that won more of them than its share serves their requests one behind
another for as long as they stay open, while another worker idles. So a
worker accepts only while it holds no more than its share (plus one) of all
the workers' connections.
"""

from __future__ import annotations

import mmap

# How soon a worker that stopped accepting at its share looks again.
SHARE_RECHECK_SECONDS = 0.01


class ConnectionShares:
    """How many connections each worker holds, in memory shared by every worker.

    Made in gunicorn's master when it loads the worker class, so every worker
    forked from it shares it. A worker has the slot of its ``age`` (gunicorn's
    spawn counter) modulo ``SLOTS`` and alone writes it; the master clears it
    when the worker exits. A read is a sum of counts each written whole, with
    no lock: a count a moment old only shifts a limit by one for a moment.
    """

    SLOTS = 128  # more than any machine's workers; a sum of them costs under a microsecond

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * 8)
        self._counts = memoryview(self._memory).cast("q")

    def clear(self, age: int) -> None:
        self._counts[age % self.SLOTS] = 0

    def accept_limit(self, age: int, connections: int, workers: int) -> int:
        """Publish this worker's ``connections``; how many it may hold before it stops accepting:
        its share of all the workers' connections, plus one. The worker holding the fewest is
        always under it, so some worker always accepts."""
        self._counts[age % self.SLOTS] = connections
        return -(-sum(self._counts) // max(workers, 1)) + 1


connection_shares = ConnectionShares()
