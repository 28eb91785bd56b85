"""The link to PostgreSQL: every wait on the database is bounded, and a dead
idle connection is noticed before a statement is sent on it.

PostgreSQL cancels a statement that runs past ``statement_timeout`` itself,
but only a server that runs can: one that is frozen, or cut off by a network
partition, leaves the client blocked on a socket the kernel keeps open (TCP
keepalives and ``tcp_user_timeout`` do not help while the server's kernel
still acknowledges). So the engine's connections are ``AnswerBoundConnection``s,
psycopg connections whose every wait (a statement and its rows, a commit, a
rollback) gives up after ``answer_within`` seconds, the statement timeout plus
a second: the connection is closed (its state is unknown, a write may or may
not have been applied) and ``DatabaseDidNotAnswer`` raised, which SQLAlchemy
reports as a lost connection (``OperationalError``, the pool invalidated) and
the service answers 503. Connecting is bounded by ``connect_timeout``.

After the database fell silent (a wait or a connect ran out of time), the
process stops asking it on requests' time: new connections are refused at
once, so the requests that follow (and the clean-up of the one that waited)
answer 503 in no time instead of each waiting out a connect timeout, and a
sync worker is free again at once. A thread of the process's own tries to
connect meanwhile, every ``WATCH_INTERVAL`` seconds; the first connection
that succeeds ends the silence (healing as soon as the database is back),
and so does nobody asking for a connection for ``WATCH_WHILE_WANTED``
seconds (the thread does not outlive the need; the next request tries for
itself).

A connection that sat in the pool while the server dropped it (a restart,
``pg_terminate_backend``, a failover) has the server's goodbye (an error
message, the end of the stream) waiting on its socket. Each checkout looks for
that without a round trip (a zero-timeout poll) and takes a fresh connection
instead, before anything is sent: reads and writes alike are then safe to run.

Everything here is PostgreSQL's (psycopg's); SQLite waits on file locks, which
its busy timeout bounds.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as psycopg_errors
from psycopg.abc import PQGen
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

RV = TypeVar("RV")
log = logging.getLogger(__name__)

# How much longer than the statement timeout a wait may last: the server's own
# cancellation, its answer and the rows have to travel. A little under the
# contract's second, so that the request around the wait (and one that queued
# behind it in the same worker) is still answered within the timeout plus a second.
ANSWER_MARGIN = 0.8
# While the database is silent: seconds between the watcher's connection attempts, and
# how long it keeps trying after the last request that wanted a connection.
WATCH_INTERVAL = 0.5
WATCH_WHILE_WANTED = 10.0
# SQLSTATE read_only_sql_transaction: a standby, or default_transaction_read_only during a failover.
READ_ONLY_SQLSTATE = "25006"
# psycopg's own internal signal that a wait ran out of time (psycopg >= 3.3).
_WAIT_TIMEOUT: type[Exception] = psycopg_errors._WaitTimeout


class DatabaseDidNotAnswer(psycopg.OperationalError):
    """The database did not answer in time; the connection was closed."""


class AnswerBoundConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits for the database at most ``answer_within`` seconds (None: for ever).

    ``bound_answers`` makes a subclass per engine: the class holds the
    engine's deadline and whether its database is silent in this process.
    """

    answer_within: float | None = None
    # A shorter deadline for a while (``answering_within``): running out of it says less about the database.
    _answer_within_for_now: float | None = None
    # The engine's connection arguments, for the watcher; the process (pid) in which the database is silent.
    _connect_arguments: tuple[Any, Any] = ((), {})
    _silent_in: int = 0
    _wanted_at: float = 0.0
    _watch_lock = threading.Lock()

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        for_now = self._answer_within_for_now
        bound = timeout if timeout is not None else for_now if for_now is not None else self.answer_within
        try:
            return super().wait(gen, interval, bound)
        except _WAIT_TIMEOUT:
            # Mid-statement, the connection's state is unknown: it is never used again.
            self.pgconn.finish()
            if bound == self.answer_within:
                type(self).fell_silent()
            raise DatabaseDidNotAnswer(f"the database did not answer within {bound:g} s") from None

    @classmethod
    def silent(cls) -> bool:
        """Whether the database is silent (in this process; a forked child starts afresh)."""
        return cls._silent_in == os.getpid()

    @classmethod
    def fell_silent(cls) -> None:
        """Stop connecting on requests' time; a thread tries until the database answers."""
        with cls._watch_lock:
            if cls.silent():
                return
            cls._silent_in = os.getpid()
            cls._wanted_at = time.monotonic()
        log.warning("the database did not answer in time; requests are answered 503 until it does")
        threading.Thread(target=cls._watch, name="database-watch", daemon=True).start()

    @classmethod
    def refuse_while_silent(cls) -> None:
        if cls.silent():
            cls._wanted_at = time.monotonic()
            raise DatabaseDidNotAnswer("the database did not answer lately; a connection is being tried meanwhile")

    @classmethod
    def _watch(cls) -> None:
        cargs, cparams = cls._connect_arguments
        while time.monotonic() - cls._wanted_at < WATCH_WHILE_WANTED:
            time.sleep(WATCH_INTERVAL)
            try:
                cls.connect(*cargs, **cparams).close()
            except psycopg.Error:
                continue
            log.warning("the database answers again")
            break
        cls._silent_in = 0


def did_not_answer(error: BaseException) -> bool:
    """Whether ``error`` (a driver error) means the database was silent, not merely gone."""
    return isinstance(error, DatabaseDidNotAnswer | psycopg_errors.ConnectionTimeout)


def refuses_writes(error: BaseException | None) -> bool:
    """Whether ``error`` (a driver error) is the database refusing a write: read-only, as during a failover."""
    return getattr(error, "sqlstate", None) == READ_ONLY_SQLSTATE


@contextmanager
def answering_within(driver_connection: Any, seconds: float) -> Iterator[None]:
    """Bound ``driver_connection``'s waits by ``seconds`` in this block (a
    readiness check's own short deadline); running out of it does not make
    the process rest."""
    if not isinstance(driver_connection, AnswerBoundConnection):
        yield
        return
    driver_connection._answer_within_for_now = seconds
    try:
        yield
    finally:
        driver_connection._answer_within_for_now = None


def bound_answers(engine: Engine, statement_timeout_ms: int) -> None:
    """Make ``engine`` (PostgreSQL on psycopg) connect with ``AnswerBoundConnection``s
    that wait at most the statement timeout plus ``ANSWER_MARGIN`` (for ever
    when the statement timeout is 0, off), and check idle connections at checkout."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    # A class per engine: its waits are bounded by its own statement timeout, its silence its own.
    bounded: type[AnswerBoundConnection] = type(
        "AnswerBoundConnection",
        (AnswerBoundConnection,),
        {
            "answer_within": statement_timeout_ms / 1000 + ANSWER_MARGIN if statement_timeout_ms else None,
            "_silent_in": 0,
            "_watch_lock": threading.Lock(),
        },
    )

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        bounded.refuse_while_silent()
        bounded._connect_arguments = (cargs, cparams)
        try:
            return bounded.connect(*cargs, **cparams)
        except psycopg_errors.ConnectionTimeout:
            bounded.fell_silent()
            raise

    @event.listens_for(engine, "checkout")
    def _checkout(driver_connection: Any, _record: Any, _proxy: Any) -> None:
        if dropped_by_server(driver_connection):
            raise DisconnectionError("the server closed this idle connection")


def dropped_by_server(driver_connection: Any) -> bool:
    """Whether an idle connection was closed by the server: something waits on
    its socket (the server's last error message, or the end of the stream)."""
    if driver_connection.closed:
        return True
    poller = select.poll()
    poller.register(driver_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))
