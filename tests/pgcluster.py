"""A private PostgreSQL cluster a test may stop and start at will.

The shared server is never stopped; tests of outages start their own under
a temp folder, on a free port, from PostgreSQL's server programs: a test is
skipped with one line naming what is missing when the machine lacks them
(a failure instead under ``USER_SESSIONS_REQUIRE_ALL=1``). ``initdb`` refuses
to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from tests.live import free_port

REQUIRE_ALL = "USER_SESSIONS_REQUIRE_ALL"
_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (``POSTGRES_BIN``, or the newest
    ``/usr/lib/postgresql/*/bin``); skips the test when there is none."""
    configured = os.environ.get("POSTGRES_BIN")
    candidates = [Path(configured)] if configured else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if all(os.access(folder / program, os.X_OK) for program in _SERVER_PROGRAMS):
            if os.geteuid() == 0 and shutil.which("runuser") is None:
                _missing("runuser (to run PostgreSQL as the postgres user): apt-get install util-linux")
            return folder
    _missing(
        f"PostgreSQL's server programs ({', '.join(_SERVER_PROGRAMS)} in {configured or '/usr/lib/postgresql/*/bin'}):"
        " apt-get install postgresql, or set POSTGRES_BIN"
    )


def _missing(what: str) -> NoReturn:
    if os.environ.get(REQUIRE_ALL, "") not in ("", "0"):
        pytest.fail(f"needs {what} ({REQUIRE_ALL} is set)", pytrace=False)
    pytest.skip(f"needs {what}")


def _as_cluster_owner(command: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PrivatePostgres:
    """``initdb`` once, then ``start()`` / ``stop()`` as often as a test likes."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="user-sessions-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=100"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def execute(self, sql: str) -> list[tuple[object, ...]]:
        """Run ``sql`` as the superuser on a connection of its own (read-write whatever the defaults)."""
        with psycopg.connect(
            self.url, autocommit=True, connect_timeout=5, options="-c default_transaction_read_only=off"
        ) as admin:
            cursor = admin.execute(sql)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def pids(self) -> list[int]:
        """The postmaster's process id first, then its children's (every backend)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Stop every server process (SIGSTOP): connections stay open and nothing answers, as in a partition."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Frozen for the block, thawed however it ends."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def terminate_backends(self) -> int:
        """Drop every client connection but the caller's, as a restart or a failover does;
        returns once they are gone. How many there were."""
        rows = self.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return len(rows)

    @contextmanager
    def read_only(self) -> Iterator[None]:
        """Every new transaction read-only for the block (``default_transaction_read_only``,
        as a failover script sets it on the old primary)."""
        self.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        self.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            self.execute("ALTER SYSTEM RESET default_transaction_read_only")
            self.execute("SELECT pg_reload_conf()")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.thaw()  # a frozen server does not stop
        subprocess.run(
            _as_cluster_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *command: str) -> None:
        result = subprocess.run(_as_cluster_owner(command), capture_output=True, text=True, check=False, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
