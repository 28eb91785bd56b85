"""The marks that keep a session off the cache on the instance that acknowledged
its write are seen by every worker forked from the process that made them."""

from __future__ import annotations

import os
import uuid

import pytest

from service.cache.owed import UnsettledSessions


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_mark_made_in_one_forked_worker_is_seen_by_its_siblings() -> None:
    marks = UnsettledSessions()  # made before the fork, as the app in gunicorn's master
    user_session = uuid.uuid4()
    child = os.fork()
    if child == 0:  # a worker that acknowledged a write Redis did not take
        marks.mark([user_session], 30)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert marks.marked(user_session)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_workers_counting_at_once_lose_no_count() -> None:
    """Counting in and out takes a lock the forked workers share: no count is lost."""
    marks = UnsettledSessions(buckets=1)  # every session in one bucket: the most contention
    sessions = [uuid.uuid4() for _ in range(2000)]
    children = []
    for _ in range(4):
        child = os.fork()
        if child == 0:
            for user_session in sessions:
                marks.mark([user_session], 30)
            os._exit(0)
        children.append(child)
    for child in children:
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert marks._marks[0] == 4 * len(sessions)
    marks.settle(sessions * 4)
    assert not marks.marked(sessions[0])
