"""``PreparedStatement``: a statement that returns rows (a SELECT, or a write with
RETURNING), compiled once per database and run straight on a pooled driver
connection, as a transaction of its own.

Reading one session, or creating one, is a single short statement;
SQLAlchemy's execution path (session, result metadata, row processing) costs
several times what the database takes to answer it. A prepared statement keeps
what SQLAlchemy decides (the SQL for the dialect, the type conversions of
every parameter and column) and drops the per-call machinery. Driver errors
come out as SQLAlchemy's ``DBAPIError`` family, as from any other query, and
a connection the database dropped empties the pool, as SQLAlchemy does: its
siblings were most likely dropped with it.

What is dropped includes the engine's events (``before_cursor_execute``,
``handle_error``) and ``echo``: statement tracing does not see these
statements. Nor does the session's guard against unrecorded writes of user
sessions (``service.repositories.changes``): a prepared UPDATE or DELETE must
say that its caller notes what it changes (``changes_noted_by_caller``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Delete, Engine, Insert, Select, Update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

_Convert = Callable[[Any], Any] | None


def _dialect_key(dialect: Dialect) -> tuple[str, str, str]:
    """What the compiled SQL and its conversions depend on."""
    return dialect.name, dialect.driver, dialect.paramstyle


class _Compiled(NamedTuple):
    sql: str
    # Values the statement itself carries (literals SQLAlchemy binds, such as the 1 of ``version + 1``).
    fixed: Mapping[str, Any]
    # Parameter names in the order a positional driver (SQLite) takes them; empty for named ones.
    positions: tuple[str, ...]
    binds: Mapping[str, _Convert]
    # (position, conversion) of the result columns the driver's value is not final for.
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]
    row_type: Any


class PreparedStatement:
    """``statement`` ready to run on any engine, compiled on first use there.

    Rows come back as ``row_type`` (a named tuple whose fields must be the
    statement's column keys, in order), by default one made from those keys:
    plain values, readable by name or by position.
    """

    def __init__(
        self,
        statement: Select[Any] | Insert | Update | Delete,
        row_type: type[Any] | None = None,
        *,
        changes_noted_by_caller: bool = False,
    ) -> None:
        if isinstance(statement, Update | Delete) and not changes_noted_by_caller:
            raise ValueError(
                "a prepared write runs past the session's change tracking: its caller must note its changes"
            )
        self.statement = statement
        fields = tuple(str(column.key) for column in statement.exported_columns)
        made: Any = row_type if row_type is not None else namedtuple("Row", fields)
        if tuple(made._fields) != fields:
            raise TypeError(f"{made.__name__}'s fields are not the columns {fields}")
        self.row_type = made
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}

    def first(self, bind: Engine | Connection | Session, parameters: Mapping[str, Any]) -> Any:
        """The first row for ``parameters``, or None.

        On an engine it runs on a pooled connection of its own, as a
        transaction of its own; on a connection or a session, in their
        transaction (a unit of work's), seeing what it wrote.
        """
        if isinstance(bind, Connection | Session):
            row = bind.execute(self.statement, parameters).first()
            return None if row is None else self.row_type._make(row)
        rows = self._run(bind, parameters, lambda cursor: [row] if (row := cursor.fetchone()) is not None else [])
        return rows[0] if rows else None

    def all(self, bind: Engine | Connection | Session, parameters: Mapping[str, Any]) -> list[Any]:
        """Every row for ``parameters`` (run as ``first`` says)."""
        if isinstance(bind, Connection | Session):
            return [self.row_type._make(row) for row in bind.execute(self.statement, parameters)]
        return self._run(bind, parameters, lambda cursor: cursor.fetchall())

    def compiled_length(self, dialect: Dialect) -> int:
        """The length of the statement's SQL for ``dialect`` (compiling it, once)."""
        compiled = self._compiled.get(_dialect_key(dialect)) or self._compile(dialect)
        return len(compiled.sql)

    def _run(self, engine: Engine, parameters: Mapping[str, Any], fetch: Callable[[Any], list[Any]]) -> list[Any]:
        compiled = self._compiled.get(_dialect_key(engine.dialect)) or self._compile(engine.dialect)
        # As SQLAlchemy does, parameters the statement does not take are left out.
        binds = compiled.binds
        bound: dict[str, Any] = {
            name: value if convert is None else convert(value)
            for name, value in {**compiled.fixed, **parameters}.items()
            if name in binds
            for convert in (binds[name],)
        }
        arguments: Any = tuple(bound[name] for name in compiled.positions) if compiled.positions else bound
        driver_error = engine.dialect.loaded_dbapi.Error
        try:
            connection = engine.raw_connection()
        except driver_error as error:
            raise self._translate(engine, compiled.sql, error, None) from error
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.sql, arguments)
                rows = fetch(cursor)
            finally:
                cursor.close()
        except driver_error as error:
            raise self._translate(engine, compiled.sql, error, connection) from error
        finally:
            connection.close()
        if not compiled.conversions:
            return [compiled.row_type._make(row) for row in rows]
        return [self._converted(compiled, row) for row in rows]

    @staticmethod
    def _converted(compiled: _Compiled, row: Any) -> Any:
        values = list(row)
        for index, convert in compiled.conversions:
            if values[index] is not None:
                values[index] = convert(values[index])
        return compiled.row_type._make(values)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.post_compile_params:
            raise ValueError("a prepared statement cannot hold parameters rendered at execution (IN lists)")
        binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
        processors = (
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.exported_columns
        )
        conversions = tuple((index, convert) for index, convert in enumerate(processors) if convert is not None)
        fixed = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        result = _Compiled(
            sql=compiled.string,
            fixed=fixed,
            positions=tuple(compiled.positiontup or ()),
            binds=binds,
            conversions=conversions,
            row_type=self.row_type,
        )
        self._compiled[_dialect_key(dialect)] = result
        return result

    @staticmethod
    def _translate(engine: Engine, sql: str, error: Exception, connection: Any) -> StatementError:
        """The error as SQLAlchemy reports it. A lost connection leaves the pool,
        and the pool starts afresh: the database restarted or failed over, and
        the other idle connections are as dead as this one."""
        dialect = engine.dialect
        disconnected = False
        if connection is not None:
            disconnected = dialect.is_disconnect(error, connection.dbapi_connection, None)  # type: ignore[arg-type]
            if disconnected:
                connection.invalidate(error)
                engine.dispose()
        return DBAPIError.instance(
            sql,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnected,
            dialect=dialect,
        )
