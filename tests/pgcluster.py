"""Moved to ``tests/support/pgcluster.py``. This module stays only for the files other
branches own (tests/contract/test_client.py, tests/integration/test_container.py):
delete it once they import ``tests.support.pgcluster``."""

from tests.support.pgcluster import PrivatePostgres

__all__ = ["PrivatePostgres"]
