"""The container's pieces, checked without a Docker engine: the Dockerfile
passes hadolint and says what it must, and the entry point, run as it is
against a PostgreSQL that starts late, waits, migrates and serves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import make_url

from service import create_app
from tests.support.databases import POSTGRES_URL, fresh_postgres_database
from tests.support.live import PROJECT_ROOT, free_port
from tests.support.pgcluster import PrivatePostgres

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
MIGRATIONS = PROJECT_ROOT / "service" / "migrations"
MIGRATION_LOCK_ID = 0x75736572  # service/migrations/env.py


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


def service_environ(**settings: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("PROMETHEUS_", "PYTEST_"))}
    environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(settings)
    return environ


def script_head() -> str:
    """The newest revision among the migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def head_revision(database_url: str) -> str | None:
    with psycopg.connect(database_url) as connection:
        exists = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        if exists is None or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


# --- Dockerfile ---------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith("#")]
    assert instructions.count("FROM") == 2
    assert any(line.startswith("FROM ") and " AS build" in line for line in lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    assert "RUN pip install --no-cache-dir ." in lines  # from pyproject.toml
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert any("HEALTHCHECK" in line for line in lines)
    assert "/healthz" in DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["entrypoint"]' in lines
    assert 'CMD ["gunicorn", "wsgi:app"]' in lines
    assert os.access(ENTRYPOINT, os.X_OK)


# --- the entry point, outside a container -----------------------------------------------------


@pytest.mark.slow
def test_the_entrypoint_waits_for_a_late_database_migrates_it_and_serves(tmp_path: Path) -> None:
    cluster = PrivatePostgres()  # made, not started: the entry point must wait for it
    port = free_port()
    key = "entrypoint-key-" + "0" * 24
    log_path = tmp_path / "entrypoint.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT)],
            cwd=PROJECT_ROOT,
            env=service_environ(
                ENV="production",
                DATABASE_URL=cluster.url,
                SECRET_KEY="entrypoint-secret",
                API_KEYS=key,
                HOST="127.0.0.1",
                PORT=str(port),
                GUNICORN_WORKERS="2",
                DB_WAIT_TIMEOUT="60",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "database not ready (attempt 2" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        cluster.start()
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)

        output = log_path.read_text()
        assert "database not ready (attempt 1: OperationalError); retrying in 0.25 s" in output
        assert "database ready after" in output
        assert head_revision(cluster.url) == script_head()
        base = f"http://127.0.0.1:{port}"
        assert requests.post(f"{base}/user-sessions", json={}, timeout=5).status_code == 401
        created = requests.post(f"{base}/user-sessions", json={}, headers={"X-API-Key": key}, timeout=5)
        assert created.status_code == 201
        # `exec`: the entry point's process is now gunicorn's master, and it stops on SIGTERM.
        process.send_signal(signal.SIGTERM)
        # The master gives its workers GUNICORN_GRACEFUL_TIMEOUT (30 s) to finish: wait longer than that.
        try:
            assert process.wait(timeout=45) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn did not stop on SIGTERM:\n{log_path.read_text()}")
        assert "Shutting down: Master" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cluster.destroy()


def test_the_entrypoint_refuses_production_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)],
        cwd=PROJECT_ROOT,
        env=service_environ(ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", SECRET_KEY="s"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ENV=production refuses to start without API_KEYS" in result.stderr


def test_the_entrypoint_can_skip_migrations_and_run_another_command(tmp_path: Path) -> None:
    database = tmp_path / "skipped.sqlite3"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "flask", "--app", "wsgi", "user-sessions", "purge", "--deleted-before", "30d"],
        cwd=PROJECT_ROOT,
        env=service_environ(DATABASE_URL=f"sqlite:///{database}", SECRET_KEY="s", MIGRATE_ON_START="false"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Not migrated, so the purge finds no table: proof that the upgrade was skipped and the command ran.
    assert result.returncode != 0
    assert "user_sessions" in result.stderr


# --- waiting and migrating -----------------------------------------------------------------------


def test_wait_for_database_gives_up_after_its_timeout_with_a_clear_message() -> None:
    app: Flask = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "SECRET_KEY": "s"})
    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["user-sessions", "wait-for-database", "--timeout", "1"])
    assert 1 <= time.monotonic() - started < 4
    assert result.exit_code == 1
    assert "the database did not answer within 1 s (OperationalError)" in result.output
    assert "retrying in 0.25 s" in result.output
    assert "retrying in 0.5 s" in result.output


def test_wait_for_database_returns_at_once_when_it_answers(tmp_path: Path) -> None:
    app: Flask = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}", "SECRET_KEY": "s"})
    result = app.test_cli_runner().invoke(args=["user-sessions", "wait-for-database", "--timeout", "0"])
    assert result.exit_code == 0
    assert "database ready after 1 attempt(s)" in result.output


@pytest.mark.slow
def test_instances_starting_at_once_migrate_one_after_the_other() -> None:
    """Three upgrades queue on the migration lock; released together, each succeeds."""
    if not POSTGRES_URL:
        pytest.skip("TEST_DATABASE_URL is not set: the migration lock is PostgreSQL's")
    database_url = fresh_postgres_database("concurrent_migrations")
    plain_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    environ = service_environ(DATABASE_URL=database_url, SECRET_KEY="s")
    with psycopg.connect(plain_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        upgrades = [
            subprocess.Popen(
                [tool("flask"), "--app", "wsgi", "db", "upgrade"],
                cwd=PROJECT_ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        deadline = time.monotonic() + 60
        while waiting_for_lock(holder) < 3:
            assert all(upgrade.poll() is None for upgrade in upgrades), "an upgrade did not wait for the lock"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert head_revision(plain_url) is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    outputs = [upgrade.communicate(timeout=120)[0] for upgrade in upgrades]
    assert [upgrade.returncode for upgrade in upgrades] == [0, 0, 0], outputs
    assert head_revision(plain_url) == script_head()
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1


def waiting_for_lock(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
        (MIGRATION_LOCK_ID,),
    ).fetchone()
    return int(row[0]) if row else 0
