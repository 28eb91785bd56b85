"""The database layer's foundations: ``Base``, portable column types, engine
setup and ``get_db_session()``, the unit-of-work scope every use case opens.

Flask-SQLAlchemy's ``db.session`` is the only SQLAlchemy session: it lives for
one app context and is removed at teardown. ``get_db_session()`` is a
commit-or-rollback scope over it, never a second session.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, DateTime, Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

from service.database_link import answering_within, bound_answers
from service.extensions import db
from service.json import loads as json_loads

_SCOPE_DEPTH = "unit_of_work_depth"
_UNIT_OF_WORK = "user_sessions_unit_of_work"
# What a unit of work asks of its connection, per backend (see ``engine_options``
# and ``configure_engine``): a real transaction, where plain reads run without.
_UNIT_OF_WORK_OPTIONS: dict[str, dict[str, Any]] = {
    "postgresql": {_UNIT_OF_WORK: True, "isolation_level": "READ COMMITTED"},
    "sqlite": {_UNIT_OF_WORK: True},
}


class Base(DeclarativeBase):
    """Declarative base for every model, on ``db``'s metadata (stable constraint names for Alembic)."""

    metadata = db.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC (fixed-width text that sorts correctly) and made aware
    again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "postgresql":
            return None  # the driver's values are aware already
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        # PostgreSQL's values arrive aware (in the connection's time zone, UTC);
        # an aware value is the same instant in any zone, and output converts to UTC.
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def schema_objects_for(dialect_name: str) -> Callable[..., bool]:
    """An Alembic ``include_object`` hook: leave out of comparisons what the
    models mark for another kind of database (``info={"dialect": …}``)."""

    def include_object(schema_object: Any, _name: Any, _type: Any, _reflected: Any, _compare_to: Any) -> bool:
        dialect = getattr(schema_object, "info", {}).get("dialect")
        return dialect is None or dialect == dialect_name

    return include_object


def utcnow() -> datetime:
    """The service's clock: aware UTC with microseconds, as stored."""
    return datetime.now(UTC)


def engine_options(database_uri: str, config: dict[str, Any]) -> dict[str, Any]:
    """Engine options per backend: pool sizes, timeouts, UTC sessions.

    Every backend hides bound parameters from error messages: those end up
    in logs, and parameters are personal data (names, e-mail addresses). JSON
    columns are read by ``service.json.loads``, at orjson's speed.
    """
    return {"hide_parameters": True, "json_deserializer": json_loads, **_backend_engine_options(database_uri, config)}


def _backend_engine_options(database_uri: str, config: dict[str, Any]) -> dict[str, Any]:
    url = make_url(database_uri)
    if url.get_backend_name() == "postgresql":
        timeout = config["DB_STATEMENT_TIMEOUT_MS"]
        return {
            # Reads outside a unit of work are single statements: no BEGIN and
            # ROLLBACK round trips around them. ``get_db_session()`` asks for a
            # real transaction.
            "isolation_level": "AUTOCOMMIT",
            "pool_size": config["DB_POOL_SIZE"],
            "max_overflow": config["DB_MAX_OVERFLOW"],
            "pool_timeout": config["DB_POOL_TIMEOUT"],
            "pool_recycle": 1800,
            "connect_args": {
                "connect_timeout": config["DB_CONNECT_TIMEOUT"],
                "options": f"-c timezone=UTC -c statement_timeout={timeout}",
                "application_name": "user-sessions",
            },
        }
    if url.get_backend_name() == "sqlite":
        # The driver's own transaction handling is switched off in
        # ``configure_engine``; a lock wait gives up after the busy timeout.
        return {"connect_args": {"timeout": max(config["DB_STATEMENT_TIMEOUT_MS"], 1000) / 1000}}
    return {}


def configure_engine(engine: Engine, config: Mapping[str, Any]) -> None:
    """Bound every wait on PostgreSQL (``service.database_link``), and make
    SQLite safe for several workers: WAL, and write locks taken up front.

    pysqlite defers ``BEGIN`` and starts every transaction as a reader; two
    readers that both go on to write fail with "database is locked", which no
    busy timeout cures. A unit of work therefore begins ``IMMEDIATE`` (it
    takes the write lock first and queues on the busy timeout), while plain
    reads run without a transaction, as on PostgreSQL, and under WAL never
    wait for a writer.
    """
    bound_answers(engine, config["DB_STATEMENT_TIMEOUT_MS"])
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(_UNIT_OF_WORK):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


DatabaseState = Literal["ok", "read_only", "unavailable"]
# PostgreSQL takes writes: not a standby, and not read-only by default (as a failover sets it).
_TAKES_WRITES = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
_readiness_lock = threading.Lock()
# One check in flight per engine and process: readiness probes never pile up on a silent database.
_readiness_checks: weakref.WeakKeyDictionary[Engine, tuple[int, Future[DatabaseState]]] = weakref.WeakKeyDictionary()


def database_state(engine: Engine, within: float) -> DatabaseState:
    """Whether the database answers within ``within`` seconds and takes writes.

    The check runs in a thread of its own, and this waits for it ``within``
    seconds at most, whatever the database does: a pool to wait for, a
    connection to make, a statement without answer. While one check is in
    flight (on a silent database, until its own deadlines end it), later
    callers wait for that one instead of starting another.
    """
    with _readiness_lock:
        pid, check = _readiness_checks.get(engine, (0, None))
        if check is None or check.done() or pid != os.getpid():
            check = Future()
            _readiness_checks[engine] = (os.getpid(), check)
            threading.Thread(
                target=_check_database, args=(engine, within, check), name="readiness-check", daemon=True
            ).start()
    try:
        return check.result(timeout=within)
    except FutureTimeout:
        return "unavailable"


def _check_database(engine: Engine, within: float, check: Future[DatabaseState]) -> None:
    state: DatabaseState = "unavailable"
    try:
        with engine.connect() as connection, answering_within(connection.connection.driver_connection, within):
            if connection.dialect.name == "postgresql":
                state = "ok" if connection.exec_driver_sql(_TAKES_WRITES).scalar() else "read_only"
            else:
                connection.exec_driver_sql("SELECT 1")
                state = "ok"
    except SQLAlchemyError:
        pass
    finally:
        check.set_result(state)


def in_transaction(connection: Connection) -> Connection:
    """``connection`` set to run in a real transaction, as a unit of work does
    (plain reads run without one); for work outside ``get_db_session()``,
    such as migrations."""
    return connection.execution_options(**_UNIT_OF_WORK_OPTIONS.get(connection.dialect.name, {}))


def in_unit_of_work(db_session: Session) -> bool:
    """Whether ``db_session`` is inside ``get_db_session()``."""
    depth: int = db_session.info.get(_SCOPE_DEPTH, 0)
    return depth > 0


@contextmanager
def one_statement() -> Iterator[Session]:
    """The scope of a use case that is a single statement.

    On its own the statement commits by itself, with no BEGIN and COMMIT
    round trips around it. Inside a unit of work it runs in a savepoint, so
    that its failure (a conflict, say) undoes only itself.
    """
    db_session = db.session()
    if not in_unit_of_work(db_session):
        yield db_session
        return
    with get_db_session() as nested:
        yield nested


@contextmanager
def get_db_session() -> Iterator[Session]:
    """One unit of work on the request's ``db.session``.

    The outermost scope commits when its block succeeds and rolls back when it
    raises. A nested scope runs in a savepoint: its failure undoes only its own
    work, and its success commits nothing until the outermost scope does.
    """
    db_session = db.session()
    depth = db_session.info.get(_SCOPE_DEPTH, 0)
    if depth == 0:
        if db_session.in_transaction():
            # Let go of the connection earlier reads used, so the unit of work
            # gets one in a real transaction.
            db_session.commit()
        dialect = db_session.get_bind().dialect.name
        db_session.connection(execution_options=_UNIT_OF_WORK_OPTIONS.get(dialect, {}))
    db_session.info[_SCOPE_DEPTH] = depth + 1
    try:
        if depth:
            with db_session.begin_nested():
                yield db_session
        else:
            try:
                yield db_session
                db_session.commit()
            except BaseException:
                db_session.rollback()
                raise
    finally:
        db_session.info[_SCOPE_DEPTH] = depth
