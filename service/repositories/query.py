"""``ListQuery``: a small composable query for listing one model's rows.

Filters, one sort column, a keyset cursor, a limit and an optional count,
composed step by step; each step returns a new query, so a half-built one can
be shared. Paging is keyset, never OFFSET: a page starts strictly after the
``(sort value, tiebreaker)`` of the last row of the page before it, in the
sort's direction, so its cost does not grow with its depth and rows inserted
meanwhile are neither repeated nor skipped. The tiebreaker (the primary key)
follows the sort's direction, so an index on ``(sort column, primary key)``
serves both directions with and without a cursor.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, inspect, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.database import in_unit_of_work
from service.repositories.prepared import PreparedStatement
from service.repositories.statement_cache import StatementCache

RowT = TypeVar("RowT")

_KEYSET_PARAMETER = "after_keyset_"
_FETCH_PARAMETER = "page_rows"
# Page and count statements compiled for ``ListQuery.prepared``, within a budget of memory.
PREPARED = StatementCache()


@functools.lru_cache(maxsize=64)
def _after(columns: tuple[InstrumentedAttribute[Any], ...], descending: bool) -> ColumnElement[bool]:
    """``(sort column, tiebreaker) < (:after_keyset_0, :after_keyset_1)`` (``>`` ascending).

    A row-value comparison: one index range scan on PostgreSQL and SQLite
    alike. Built once per key and direction, the cursor's values bound at
    execution: building SQL expressions costs more than running this one.
    """
    bounds = [bindparam(f"{_KEYSET_PARAMETER}{index}", type_=column.type) for index, column in enumerate(columns)]
    key: Any = columns[0] if len(columns) == 1 else tuple_(*columns)
    bound: Any = bounds[0] if len(columns) == 1 else tuple_(*bounds)
    criterion: ColumnElement[bool] = key < bound if descending else key > bound
    return criterion


@functools.cache
def attribute_columns(model: Any) -> tuple[ColumnElement[Any], ...]:
    """Every mapped column of ``model``, labelled with its attribute name
    (``metadata_``, not ``metadata``), so a row reads like an instance."""
    return tuple(attribute.expression.label(attribute.key) for attribute in inspect(model).column_attrs)


@dataclass(frozen=True)
class SortOrder:
    """One sort column by attribute name, ascending or descending (``-name``)."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> SortOrder:
        """``"created_at"`` is ascending, ``"-created_at"`` descending."""
        return cls(text[1:], True) if text.startswith("-") else cls(text, False)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


@dataclass(frozen=True)
class Keyset:
    """Where a page ends: the sort value and the tiebreaker of its last row."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of rows; ``next_keyset`` is None on the last page."""

    items: list[RowT]
    next_keyset: Keyset | None
    total_count: int | None = None


@dataclass(frozen=True)
class ListQuery(Generic[RowT]):
    """Rows of ``model`` that match every criterion, one keyset page at a time,
    as ``row_type`` (the model's read model, see ``BaseRepository``)."""

    db_session: Session
    model: type[Any]
    row_type: type[RowT]
    tiebreaker: InstrumentedAttribute[Any]
    criteria: tuple[ColumnElement[bool], ...] = ()
    sort_column: InstrumentedAttribute[Any] | None = None
    descending: bool = False
    after_keyset: Keyset | None = None
    row_limit: int | None = None
    # Values of the bound parameters in ``criteria``.
    parameters: Mapping[str, Any] = field(default_factory=dict)
    prepared_as: Hashable | None = None

    def where(self, *criteria: ColumnElement[bool], **parameters: Any) -> ListQuery[RowT]:
        """Also require every one of ``criteria``, with ``parameters`` the values of
        the bound parameters they hold."""
        return replace(self, criteria=self.criteria + criteria, parameters={**self.parameters, **parameters})

    def prepared(self, key: Hashable) -> ListQuery[RowT]:
        """Compile this query's pages once per ``key`` (with its sort and cursor),
        and run them past SQLAlchemy's per-statement work. The caller vouches
        that every query it gives this key has the same criteria, their values
        all in bound parameters."""
        return replace(self, prepared_as=key)

    def order_by(self, column: InstrumentedAttribute[Any], *, descending: bool = False) -> ListQuery[RowT]:
        """Sort by ``column``, ties broken by the tiebreaker in the same direction."""
        return replace(self, sort_column=column, descending=descending)

    def after(self, keyset: Keyset | None) -> ListQuery[RowT]:
        """Start strictly after ``keyset`` in the sort order (None: from the start)."""
        return replace(self, after_keyset=keyset)

    def limit(self, row_limit: int) -> ListQuery[RowT]:
        """At most ``row_limit`` rows a page."""
        if row_limit < 1:
            raise ValueError("a page holds at least one row")
        return replace(self, row_limit=row_limit)

    @property
    def _key_columns(self) -> tuple[InstrumentedAttribute[Any], ...]:
        if self.sort_column is None or self.sort_column.key == self.tiebreaker.key:
            return (self.tiebreaker,)
        return (self.sort_column, self.tiebreaker)

    def _select(self, *, fetch: Any = None) -> Select[Any]:
        """The SELECT of one page, ``fetch`` rows at most (by default the limit)."""
        columns = self._key_columns
        order = [column.desc() if self.descending else column.asc() for column in columns]
        model: Any = self.model
        query = select(*attribute_columns(model)).where(*self.criteria)
        if self.after_keyset is not None:
            query = query.where(_after(columns, self.descending))
        return query.order_by(*order).limit(fetch if fetch is not None else self.row_limit)

    def _parameters(self) -> dict[str, Any]:
        """The values of the criteria's bound parameters and of the cursor's."""
        if self.after_keyset is None:
            return dict(self.parameters)
        values = self.after_keyset.values
        if len(values) != len(self._key_columns):
            raise ValueError(f"a keyset of this query has {len(self._key_columns)} values, not {len(values)}")
        return {**self.parameters, **{f"{_KEYSET_PARAMETER}{index}": value for index, value in enumerate(values)}}

    def keyset_of(self, row: RowT) -> Keyset:
        """The keyset a page ending at ``row`` continues from."""
        return Keyset(tuple(getattr(row, column.key) for column in self._key_columns))

    def count(self) -> int:
        """How many rows match the criteria, whatever the cursor and the limit."""
        bind = self.db_session if in_unit_of_work(self.db_session) else self.db_session.get_bind()

        def make() -> PreparedStatement:
            return PreparedStatement(select(func.count().label("count")).select_from(self.model).where(*self.criteria))

        if self.prepared_as is None:
            statement = make()
        else:
            statement = PREPARED.get((self.prepared_as, self.model, "count"), self.db_session.get_bind().dialect, make)
        return int(statement.first(bind, self.parameters).count)

    def _fetch(self, fetch: int) -> list[RowT]:
        """Up to ``fetch`` rows from the cursor on. Outside a unit of work they
        are read on a connection of their own, past the ORM session's
        bookkeeping; a ``prepared`` query's statement is compiled only once."""
        parameters = self._parameters()
        bind = self.db_session if in_unit_of_work(self.db_session) else self.db_session.get_bind()
        if self.prepared_as is not None:
            return self._prepared_page().all(bind, {**parameters, _FETCH_PARAMETER: fetch})
        return PreparedStatement(self._select(fetch=fetch), self.row_type).all(bind, parameters)

    def _prepared_page(self) -> PreparedStatement:
        """The page's statement, compiled once per key, sort and kind of cursor (``prepared``)."""
        sort = None if self.sort_column is None else self.sort_column.key
        key = (self.prepared_as, self.model, sort, self.descending, self.after_keyset is not None)

        def make() -> PreparedStatement:
            return PreparedStatement(self._select(fetch=bindparam(_FETCH_PARAMETER, type_=Integer)), self.row_type)

        return PREPARED.get(key, self.db_session.get_bind().dialect, make)

    def page(self, *, with_count: bool = False) -> Page[RowT]:
        """One page, and whether another follows: one row more than the limit is
        fetched, so the last page is known to be the last without a second query."""
        if self.row_limit is None:
            raise ValueError("a page needs a limit")
        rows: Sequence[RowT] = self._fetch(self.row_limit + 1)
        items = list(rows[: self.row_limit])
        next_keyset = self.keyset_of(items[-1]) if len(rows) > self.row_limit else None
        return Page(items, next_keyset, self.count() if with_count else None)
