"""The commands an operator runs, given a configuration the service refuses:
one line on stderr, no traceback. The migration needs no API keys, since it
serves nothing; the servers still refuse production without them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import ConfigurationError, load_config
from tests.support.live import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SECRET_KEY = "cli-test-secret-key-0123456789abcdef"
KEY = "cli-test-api-key-0123456789abcdef"


def run(command: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("PROMETHEUS_", "PYTEST_"))}
    for name in ("ENV", "API_KEYS", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "RATE_LIMIT", "LOG_LEVEL"):
        environ.pop(name, None)
    environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(settings)
    return subprocess.run(
        [str(VENV_BIN / command[0]), *command[1:]],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_migration_runs_in_production_without_api_keys(tmp_path: Path) -> None:
    database = tmp_path / "migrated.sqlite3"
    result = run(
        ["flask", "--app", "wsgi", "db", "upgrade"],
        ENV="production",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=f"sqlite:///{database}",
    )
    assert result.returncode == 0, result.stderr
    assert "user_sessions" in tables(database)
    # It serves nothing, so it does not warn that the API is open either.
    assert "API_KEYS" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("database_url", "reason"),
    [
        (f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/user_sessions", "Connection refused"),
        ("sqlite:////no-such-directory/user_sessions.sqlite3", "unable to open database file"),
    ],
    ids=["postgresql-refused", "sqlite-no-directory"],
)
def test_a_migration_that_cannot_connect_prints_one_line(database_url: str, reason: str) -> None:
    result = run(["flask", "--app", "wsgi", "db", "upgrade"], DATABASE_URL=database_url)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: cannot connect to the database: ")
    assert reason in line
    assert "hunter2" not in result.stdout + result.stderr


def test_the_purge_runs_in_production_without_api_keys(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'purged.sqlite3'}"
    settings = {"ENV": "production", "SECRET_KEY": SECRET_KEY, "DATABASE_URL": database}
    assert run(["flask", "--app", "wsgi", "db", "upgrade"], **settings).returncode == 0
    result = run(["flask", "--app", "wsgi", "user-sessions", "purge", "--deleted-before", "30d"], **settings)
    assert result.returncode == 0, result.stderr
    assert "purged 0 user sessions" in result.stdout


@pytest.mark.parametrize(
    ("command", "settings", "line"),
    [
        pytest.param(
            ["db", "upgrade"],
            {"ENV": "production", "API_KEYS": KEY},
            "Error: ENV=production refuses to start without SECRET_KEY; set them and start again",
            id="production-without-secret-key",
        ),
        pytest.param(
            ["db", "upgrade"],
            {"DATABASE_URL": "postgresql://user:hunter2@db:notaport/sessions"},
            "Error: DATABASE_URL is not a database URL SQLAlchemy can use"
            " (e.g. postgresql://user:password@host:5432/name)",
            id="unreadable-database-url",
        ),
        pytest.param(
            ["user-sessions", "purge", "--deleted-before", "30d"],
            {"DB_POOL_SIZE": "lots"},
            "Error: DB_POOL_SIZE must be a whole number, got 'lots'",
            id="purge-with-a-bad-number",
        ),
        pytest.param(
            ["user-sessions", "wait-for-database"],
            {"RATE_LIMIT": "fast"},
            "Error: RATE_LIMIT must look like 100/second or 1000/minute;20/second, got 'fast'",
            id="wait-with-a-bad-rate-limit",
        ),
        pytest.param(
            ["user-sessions", "wait-for-database"],
            {"REDIS_URL": "redis://:hunter2#x@cache:6379/0"},
            "Error: REDIS_URL cannot be read: it is not a URL (percent-encode # ? / @ in a password). "
            "Its forms: redis://[[user]:password@]host[:port][/db], rediss://… (TLS) or unix:///path/to/socket[?db=N]",
            id="wait-with-a-redis-url-it-cannot-read",
        ),
    ],
)
def test_a_command_refused_by_the_configuration_prints_one_line(
    command: list[str], settings: dict[str, str], line: str
) -> None:
    result = run(["flask", "--app", "wsgi", *command], **settings)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [line]
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(["gunicorn", "--bind", "127.0.0.1:0", "wsgi:app"], id="gunicorn"),
        pytest.param(["flask", "--app", "wsgi", "run", "--port", "0"], id="flask-run"),
    ],
)
def test_a_server_still_refuses_production_without_api_keys(server: list[str]) -> None:
    result = run(server, ENV="production", SECRET_KEY=SECRET_KEY)
    assert result.returncode != 0
    assert "ENV=production refuses to start without API_KEYS; set them and start again" in result.stderr
    assert "Listening at" not in result.stderr
    assert "Running on" not in result.stderr


def test_load_config_needs_no_api_keys_for_a_command_that_serves_nothing() -> None:
    config = load_config({"ENV": "production", "SECRET_KEY": SECRET_KEY}, serving=False)
    assert config["API_KEYS"] == {}
    with pytest.raises(ConfigurationError, match="without API_KEYS;"):
        load_config({"ENV": "production", "SECRET_KEY": SECRET_KEY})
    with pytest.raises(ConfigurationError, match="without SECRET_KEY;"):
        load_config({"ENV": "production"}, serving=False)
