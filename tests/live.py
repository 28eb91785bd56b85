"""Moved to ``tests/support/live.py``. This module stays only for the files other
branches own (tests/contract/test_client.py, tests/integration/test_container.py):
delete it once they import ``tests.support.live``."""

from tests.support.live import PROJECT_ROOT, LiveServer, free_port

__all__ = ["PROJECT_ROOT", "LiveServer", "free_port"]
