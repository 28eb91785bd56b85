"""A serving worker loads only what serving needs."""

from __future__ import annotations

import subprocess
import sys

from tests.live import PROJECT_ROOT


def test_serving_does_not_import_alembic() -> None:
    """Alembic (~11 MiB a worker) is only for ``flask db``; it loads on first use."""
    probe = "import sys, wsgi; sys.stderr.write(f\"{'alembic' in sys.modules} {'flask_migrate' in sys.modules}\")"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stderr.split()[-2:] == ["False", "False"]
