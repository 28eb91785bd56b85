"""What a test needs of the machine beyond Python: programs and servers.

``make test`` passes on a machine with only Python 3.11+ and make. A test
that needs something the machine lacks calls one of these helpers first
(before it starts anything), and is skipped with one line naming what is
missing and how to get it; pytest's ``-ra`` summary folds those skips into one
line per missing thing::

    SKIPPED [12] tests/support/requirements.py:…: needs redis-server: apt-get install redis-server

CI must run everything, so there ``TEST_REQUIRE_ALL=1`` (set by ``.ci/run``)
turns each such skip into a failure. A server that is configured
(``TEST_DATABASE_URL``, ``TEST_REDIS_URL``) but does not answer always fails:
that is a broken setup, not a missing one.
"""

from __future__ import annotations

import importlib
import os
import pwd
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ALL = "TEST_REQUIRE_ALL"

# Debian package names; the suite drives the distribution's binaries, never downloads.
PROGRAMS: dict[str, tuple[str, str]] = {
    # name: (where the tests look for it, how to get it)
    "chromium": ("/usr/bin/chromium", "apt-get install chromium"),
    "redis-server": ("redis-server", "apt-get install redis-server"),
    "runuser": ("runuser", "apt-get install util-linux"),
    "buildah": ("buildah", "apt-get install buildah"),
    "openssl": ("openssl", "apt-get install openssl"),
}
POSTGRES_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
POSTGRES_HINT = "apt-get install postgresql (or set POSTGRES_BIN to a folder holding initdb, pg_ctl and postgres)"


def missing(what: str) -> NoReturn:
    """Skip the test for want of ``what`` (fail instead under ``TEST_REQUIRE_ALL=1``)."""
    if os.environ.get(REQUIRE_ALL, "") not in ("", "0"):
        pytest.fail(f"needs {what} ({REQUIRE_ALL} is set: nothing may be skipped for want of it)", pytrace=False)
    pytest.skip(f"needs {what}")


def executable(path: str | Path) -> bool:
    """A regular file this process may run (``/dev/null`` bound over a binary is not)."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def require_program(name: str) -> str:
    """The path of the program ``name`` (one of ``PROGRAMS``), or skip the test."""
    where, how = PROGRAMS[name]
    found = where if os.path.isabs(where) else shutil.which(where)
    if found is None or not executable(found):
        missing(f"{name}: {how}")
    return found


def require_postgres_server() -> Path:
    """The folder of PostgreSQL's server programs, for a private cluster; or skip.

    ``POSTGRES_BIN`` names it; otherwise the newest ``/usr/lib/postgresql/*/bin``.
    As root the cluster belongs to the ``postgres`` user (``initdb`` refuses
    root), so ``runuser`` and that user are needed too.
    """
    configured = os.environ.get("POSTGRES_BIN")
    candidates = (
        [Path(configured)]
        if configured
        else sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: _version(path.parent.name))[::-1]
    )
    folder = next(
        (path for path in candidates if all(executable(path / program) for program in POSTGRES_SERVER_PROGRAMS)),
        None,
    )
    if folder is None:
        where = configured or "/usr/lib/postgresql/*/bin"
        missing(f"PostgreSQL's server programs ({', '.join(POSTGRES_SERVER_PROGRAMS)} in {where}): {POSTGRES_HINT}")
    if os.geteuid() == 0:
        require_program("runuser")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("a 'postgres' user to own a private cluster as root: apt-get install postgresql")
    return folder


def require_postgres_url() -> str:
    """``TEST_DATABASE_URL``, or skip: the test needs the shared PostgreSQL server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        missing("a PostgreSQL server: set TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")
    return url


def require_redis_url() -> str:
    """``TEST_REDIS_URL``, or skip: the test needs the shared Redis server."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        missing("a Redis server: set TEST_REDIS_URL=redis://127.0.0.1:6379/0")
    return url


def require_module(name: str, how: str) -> ModuleType:
    """The module ``name``, or skip the whole test module that asks (fail under
    ``TEST_REQUIRE_ALL=1``); ``how`` says how to install it. Call it before the
    test module imports ``name``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        what = f"the Python module {name}: {how}"
        if os.environ.get(REQUIRE_ALL, "") not in ("", "0"):
            pytest.fail(f"needs {what} ({REQUIRE_ALL} is set: nothing may be skipped for want of it)", pytrace=False)
        pytest.skip(f"needs {what}", allow_module_level=True)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())
