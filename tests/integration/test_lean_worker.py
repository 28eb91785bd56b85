"""A serving worker loads only what serving needs.

Each probe imports ``wsgi`` (as a gunicorn worker does) in a fresh interpreter
with a chosen environment and reports which packages ended up loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.live import PROJECT_ROOT

# Settings that decide what is loaded; each probe starts without them.
OPTIONAL_SETTINGS = ("REDIS_URL", "RATE_LIMIT", "API_KEYS")


def loaded(packages: list[str], code: str, tmp_path: Path, **settings: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of ``packages`` did it import?"""
    environ = {key: value for key, value in os.environ.items() if key not in OPTIONAL_SETTINGS}
    environ.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'lean.sqlite3'}",
        INSTANCE_PATH=str(tmp_path),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        **settings,
    )
    probe = f"{code}\nimport json, sys\nsys.stderr.write(json.dumps({{p: p in sys.modules for p in {packages!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, bool] = json.loads(result.stderr.splitlines()[-1])
    return report


def serving(packages: list[str], tmp_path: Path, **settings: str) -> Mapping[str, bool]:
    return loaded(packages, "import wsgi", tmp_path, **settings)


def test_serving_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic (~11 MiB a worker) is only for ``flask db``; it loads on first use."""
    assert serving(["alembic", "flask_migrate"], tmp_path) == {"alembic": False, "flask_migrate": False}


def test_serving_never_imports_redis_py(tmp_path: Path) -> None:
    """The service speaks to Redis through hiredis (``service.cache.redis_connection``):
    redis-py (~2.8 MiB a worker) is for the tests only, even with a rate limit."""
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMIT": "10/second"}
    assert serving(["redis"], tmp_path, **settings) == {"redis": False}


def test_hiredis_is_loaded_by_the_first_redis_call_only(tmp_path: Path) -> None:
    """Made without ``REDIS_URL``, or before its first call, the link loads nothing (a worker
    forked from the master that made it loads hiredis itself, on first use)."""
    assert serving(["hiredis"], tmp_path) == {"hiredis": False}
    assert serving(["hiredis"], tmp_path, REDIS_URL="redis://127.0.0.1:1/0") == {"hiredis": False}
    first_call = (
        "import wsgi\nfrom service.cache.redis_link import redis_link\nwith wsgi.app.app_context(): redis_link().ping()"
    )
    assert loaded(["hiredis"], first_call, tmp_path, REDIS_URL="redis://127.0.0.1:1/0") == {"hiredis": True}


def test_serving_without_rate_limit_does_not_import_limits(tmp_path: Path) -> None:
    """``limits`` (~1.4 MiB a worker, with its dependencies) is only for ``RATE_LIMIT``."""
    packages = ["limits", "wrapt", "deprecated"]
    assert serving(packages, tmp_path, REDIS_URL="redis://127.0.0.1:1/0") == dict.fromkeys(packages, False)
    assert serving(["limits"], tmp_path, RATE_LIMIT="10/second") == {"limits": True}


def test_gunicorn_settings_do_not_import_multiprocessing(tmp_path: Path) -> None:
    """Every worker is forked from the master: what ``gunicorn.conf.py`` imports, each worker carries."""
    code = "import runpy; runpy.run_path('gunicorn.conf.py')"
    assert loaded(["multiprocessing"], code, tmp_path) == {"multiprocessing": False}
