"""Unit tests touch no I/O: no network, no database, no other process.

An autouse fixture makes every socket connection, database connection and
process spawn raise ``ForbiddenIO`` during a unit test, and fails the test
afterwards even if the code under test swallowed the error. A test that needs
any of these belongs in ``repositories/``, ``api/`` or ``integration/``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.pool import Pool


class ForbiddenIO(RuntimeError):
    """A unit test tried to reach outside its process."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep the call phase's report, so the fixture below fails only tests that passed."""
    report = yield
    if call.when == "call":
        item.stash[CALL_REPORT] = report
    return report


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(autouse=True)
def _no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    attempts: list[str] = []

    def forbid(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join(repr(arg) for arg in args if not isinstance(arg, socket.socket | subprocess.Popen))
            attempts.append(f"{what}({shown})")
            raise ForbiddenIO(f"a unit test may not {what}: move it to another tier (tests/unit/conftest.py)")

        return refuse

    monkeypatch.setattr(socket.socket, "connect", forbid("connect a socket"))
    monkeypatch.setattr(socket.socket, "connect_ex", forbid("connect a socket"))
    monkeypatch.setattr(subprocess.Popen, "_execute_child", forbid("start a process"))
    for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
        monkeypatch.setattr(os, name, forbid(f"start a process (os.{name})"))
    monkeypatch.setattr(sqlite3, "connect", forbid("open a SQLite database"))
    monkeypatch.setattr(sqlite3.dbapi2, "connect", forbid("open a SQLite database"))
    monkeypatch.setattr(psycopg.Connection, "connect", forbid("connect to PostgreSQL"))
    monkeypatch.setattr(Pool, "connect", forbid("use a database"))  # a pooled connection too
    yield
    call = request.node.stash.get(CALL_REPORT, None)
    if attempts and (call is None or call.passed):  # the I/O error was swallowed
        pytest.fail(f"a unit test did I/O: {'; '.join(attempts)}", pytrace=False)
