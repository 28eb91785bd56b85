"""Every committed write of a user session invalidates its cached representation.

The data layer tells what each committed write changed
(``service.repositories.changes``); this listener, installed by the app
factory, hands it to the app's cache before the request that made the write
is answered. One path for the API, the purge command and the tests alike.
"""

from __future__ import annotations

import time

from flask import Flask, has_app_context

from service.cache.representations import user_session_cache
from service.repositories import changes


def invalidate(committed: changes.Changes) -> None:
    """Drop the cached copies of what was committed (writes outside an app have no cache to tell)."""
    cache = user_session_cache() if has_app_context() else None
    if cache is not None:
        cache.invalidate(committed)


def send_owed() -> int:
    """Try once more (after the breaker's pause) to send the invalidations this
    process owes Redis; how many are still owed. For a command about to exit,
    which has no later request to send them before."""
    cache = user_session_cache() if has_app_context() else None
    if cache is None or not cache.owed:
        return 0
    time.sleep(cache.link.down_for())
    cache.send_owed()
    return len(cache.owed)


def init_app(_app: Flask) -> None:
    """Listen to the committed changes of user sessions."""
    changes.listen(invalidate)
