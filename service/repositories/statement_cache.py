"""Statements compiled once per shape of query, kept within a budget of memory.

A listing's SQL depends on which filters it uses, not on their values, so each
shape is built and compiled once and reused. Shapes are many (every
combination of filters, sort and cursor), and each costs memory: the
expression objects it was built from and its compiled form. The cache keeps
the most recently used ones within a budget of bytes, so no stream of new
shapes can grow a worker without bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from sqlalchemy.engine import Dialect

from service.repositories.prepared import PreparedStatement

# What a kept statement costs per character of its SQL (measured: a listing
# with ten metadata filters, 2.7 KB of SQL, holds about 100 KiB of objects).
BYTES_PER_SQL_CHARACTER = 40
DEFAULT_BUDGET_BYTES = 4 * 1024 * 1024


class StatementCache:
    """Prepared statements by key, least recently used out first past the budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, tuple[PreparedStatement, int]] = OrderedDict()
        self._spent = 0
        self._lock = threading.Lock()

    @property
    def spent_bytes(self) -> int:
        """What the kept statements cost, as estimated."""
        return self._spent

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, dialect: Dialect, make: Callable[[], PreparedStatement]) -> PreparedStatement:
        """The statement kept for ``key``, else ``make()``'s, compiled for ``dialect`` and kept."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[0]
        statement = make()
        cost = statement.compiled_length(dialect) * BYTES_PER_SQL_CHARACTER
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (statement, cost)
                self._spent += cost
                while self._spent > self.budget_bytes and len(self._entries) > 1:
                    _evicted, (_statement, evicted_cost) = self._entries.popitem(last=False)
                    self._spent -= evicted_cost
        return statement
