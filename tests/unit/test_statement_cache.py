"""The statement cache keeps the most recently used statements within its budget of bytes."""

from __future__ import annotations

from sqlalchemy import column, literal, select, table
from sqlalchemy.dialects import sqlite

from service.repositories.prepared import PreparedStatement
from service.repositories.statement_cache import BYTES_PER_SQL_CHARACTER, StatementCache

DIALECT = sqlite.dialect()
WIDE = table("t", *(column(f"c{i}") for i in range(50)))


def statement(width: int) -> PreparedStatement:
    return PreparedStatement(select(*(WIDE.c[f"c{i}"] for i in range(width))))


def test_a_statement_is_made_once_per_key() -> None:
    cache = StatementCache()
    made: list[int] = []

    def make() -> PreparedStatement:
        made.append(1)
        return PreparedStatement(select(literal(1).label("one")))

    first = cache.get("k", DIALECT, make)
    assert cache.get("k", DIALECT, make) is first
    assert made == [1]


def test_the_least_recently_used_go_first_past_the_budget() -> None:
    one = statement(40).compiled_length(DIALECT) * BYTES_PER_SQL_CHARACTER
    cache = StatementCache(budget_bytes=3 * one)
    for key in "abc":
        cache.get(key, DIALECT, lambda: statement(40))
    cache.get("a", DIALECT, lambda: statement(40))  # used again: now the most recent
    cache.get("d", DIALECT, lambda: statement(40))
    assert len(cache) == 3
    assert cache.spent_bytes <= cache.budget_bytes
    made_again: list[str] = []

    def remake(key: str) -> PreparedStatement:
        made_again.append(key)
        return statement(40)

    cache.get("b", DIALECT, lambda: remake("b"))
    cache.get("a", DIALECT, lambda: remake("a"))
    assert made_again == ["b"]  # b was the least recently used, so the one evicted; a was kept


def test_a_statement_larger_than_the_budget_is_still_kept_alone() -> None:
    cache = StatementCache(budget_bytes=10)
    cache.get("big", DIALECT, lambda: statement(50))
    assert len(cache) == 1
