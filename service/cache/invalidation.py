"""Every committed write of a user session invalidates its cached representation.

The data layer tells what each committed write changed
(``service.repositories.changes``); this listener, installed by the app
factory, hands it to the app's cache before the request that made the write
is answered. One path for the API, the purge command and the tests alike.
"""

from __future__ import annotations

from flask import Flask, has_app_context

from service.cache.representations import user_session_cache
from service.repositories import changes


def invalidate(committed: changes.Changes) -> None:
    """Drop the cached copies of what was committed (writes outside an app have no cache to tell)."""
    cache = user_session_cache() if has_app_context() else None
    if cache is not None:
        cache.invalidate(committed)


def init_app(_app: Flask) -> None:
    """Listen to the committed changes of user sessions."""
    changes.listen(invalidate)
