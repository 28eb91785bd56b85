"""What a process owes Redis is bounded; the marks that keep a session off the
cache last their time (tests/integration/test_owed_marks.py: across a fork)."""

from __future__ import annotations

import time
import uuid

from service.cache.owed import OwedInvalidations, UnsettledSessions


def test_owed_invalidations_keep_the_highest_version_and_erasure_wins() -> None:
    owed = OwedInvalidations(keep_seconds=60)
    first, second = uuid.uuid4(), uuid.uuid4()
    owed.add({first: 3, second: 5})
    owed.add({first: 2, second: None})
    assert owed.due(10) == {first: 3, second: None}
    owed.add({second: 9})
    assert owed.due(10) == {first: 3, second: None}


def test_a_delivery_settles_only_what_was_sent() -> None:
    owed = OwedInvalidations(keep_seconds=60)
    user_session = uuid.uuid4()
    owed.add({user_session: 2})
    sent = owed.due(10)
    owed.add({user_session: 3})  # a later write, owed while the first was on its way
    owed.delivered(sent)
    assert owed.due(10) == {user_session: 3}
    owed.delivered({user_session: 3})
    assert not owed


def test_owed_invalidations_are_bounded_in_number_and_time() -> None:
    owed = OwedInvalidations(keep_seconds=60, capacity=3)
    sessions = [uuid.uuid4() for _ in range(5)]
    for version, user_session in enumerate(sessions):
        owed.add({user_session: version})
    assert list(owed.due(10)) == sessions[2:], "the oldest went first"
    brief = OwedInvalidations(keep_seconds=0.05)
    brief.add({uuid.uuid4(): 1})
    time.sleep(0.06)
    assert brief.due(10) == {}
    assert not brief


def test_marks_last_their_time() -> None:
    marks = UnsettledSessions(buckets=1024)
    marked, other = uuid.uuid4(), uuid.uuid4()
    while other.int % 1024 == marked.int % 1024:
        other = uuid.uuid4()
    marks.mark([marked], 1.0)  # long enough that a stall of the machine cannot outlast it
    assert marks.marked(marked)
    assert not marks.marked(other)
    time.sleep(1.01)
    assert not marks.marked(marked)


def test_a_mark_clears_once_every_process_that_counted_it_in_counts_it_out() -> None:
    marks = UnsettledSessions(buckets=1024)
    user_session = uuid.uuid4()
    marks.mark([user_session], 30)
    marks.mark([user_session], 30)  # two workers owe it
    marks.settle([user_session])
    assert marks.marked(user_session)
    marks.settle([user_session])
    assert not marks.marked(user_session)
    marks.settle([user_session])  # never below zero
    marks.mark([user_session], 30)
    assert marks.marked(user_session)
