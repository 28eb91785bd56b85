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

After the database fell silent, the process leaves it alone for
``REST_AFTER_SILENCE`` seconds: new connections are refused at once, so the
requests that follow (and the clean-up of the one that waited) answer 503 in
no time instead of each waiting out a connect timeout, and a sync worker is
soon free again. The rest ends by itself; the first connection after it tries
the database again.

A connection that sat in the pool while the server dropped it (a restart,
``pg_terminate_backend``, a failover) has the server's goodbye (an error
message, the end of the stream) waiting on its socket. Each checkout looks for
that without a round trip (a zero-timeout poll) and takes a fresh connection
instead, before anything is sent: reads and writes alike are then safe to run.

Everything here is PostgreSQL's (psycopg's); SQLite waits on file locks, which
its busy timeout bounds.
"""

from __future__ import annotations

import select
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

# How much longer than the statement timeout a wait may last: the server's own
# cancellation, its answer and the rows have to travel.
ANSWER_MARGIN = 1.0
# Seconds a process leaves a database alone after it did not answer (the 503's Retry-After).
REST_AFTER_SILENCE = 1.0
# SQLSTATE read_only_sql_transaction: a standby, or default_transaction_read_only during a failover.
READ_ONLY_SQLSTATE = "25006"
# psycopg's own internal signal that a wait ran out of time (psycopg >= 3.3).
_WAIT_TIMEOUT: type[Exception] = psycopg_errors._WaitTimeout


class DatabaseDidNotAnswer(psycopg.OperationalError):
    """The database did not answer in time; the connection was closed."""


class AnswerBoundConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits for the database at most ``answer_within`` seconds (None: for ever)."""

    answer_within: float | None = None
    # Until when (time.monotonic()) no new connection is made: the database fell silent a moment ago.
    resting_until: float = 0.0
    # A shorter deadline for a while (``answering_within``): running out of it says less about the database.
    _answer_within_for_now: float | None = None

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
    def fell_silent(cls) -> None:
        """Leave the database alone for ``REST_AFTER_SILENCE`` seconds (in this
        process, on this engine: each engine has a class of its own)."""
        cls.resting_until = time.monotonic() + REST_AFTER_SILENCE


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
    # A class per engine: its waits are bounded by its own statement timeout.
    bounded: type[AnswerBoundConnection] = type(
        "AnswerBoundConnection",
        (AnswerBoundConnection,),
        {
            "answer_within": statement_timeout_ms / 1000 + ANSWER_MARGIN if statement_timeout_ms else None,
            "resting_until": 0.0,
        },
    )

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        if time.monotonic() < bounded.resting_until:
            raise DatabaseDidNotAnswer("the database did not answer a moment ago; not asking again yet")
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
