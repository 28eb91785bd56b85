"""Moved to ``tests/support/databases.py``. This module stays only for the files other
branches own (tests/contract/test_client.py, tests/integration/test_container.py):
delete it once they import ``tests.support.databases``."""

from tests.support.databases import POSTGRES_URL, fresh_postgres_database

__all__ = ["POSTGRES_URL", "fresh_postgres_database"]
