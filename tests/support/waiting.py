"""Waiting for something to happen, with a bound, instead of sleeping for a guess."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 10, every: float = 0.05) -> float:
    """Poll ``condition`` until it holds (failing the test after ``seconds``); return how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"waited {seconds} s for {what}"
        time.sleep(every)
    return time.monotonic() - started
