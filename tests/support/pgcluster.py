"""A private PostgreSQL cluster a test may stop and start at will.

The shared server is never stopped; tests of outages start their own under
a temp folder, on a free port, from PostgreSQL's server programs (the test is
skipped when the machine lacks them). ``initdb`` refuses to run as root, so as
root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg

from tests.support.live import free_port
from tests.support.requirements import require_postgres_server


def _as_cluster_owner(command: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PrivatePostgres:
    """``initdb`` once, then ``start()`` / ``stop()`` as often as a test likes."""

    def __init__(self) -> None:
        self.bin = require_postgres_server()
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
        options = "-c default_transaction_read_only=off"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5, options=options) as admin:
            cursor = admin.execute(sql)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def freeze(self) -> None:
        """Stop every server process (SIGSTOP): connections stay open and nothing answers, as in a partition."""
        self._signal_every_process(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_every_process(signal.SIGCONT)

    def _signal_every_process(self, signum: signal.Signals) -> None:
        # The postmaster first: stopped, it forks no backend that would miss the signal.
        postmaster = self._postmaster()
        os.kill(postmaster, signum)
        for pid in self._children(postmaster):
            # A backend may exit between the listing and the signal (one just
            # terminated, say); it needs no signal.
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    @staticmethod
    def _children(parent: int) -> list[int]:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == parent:
                children.append(int(stat.parent.name))
        return children

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
        # A frozen server does not stop; one that died leaves nothing to thaw
        # (and its failure, not this teardown's, is the one to report).
        with suppress(FileNotFoundError, ProcessLookupError):
            self.thaw()
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
