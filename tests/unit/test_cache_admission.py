"""A session is asked of Redis only from its second read lately in a process."""

from __future__ import annotations

import uuid

from service.cache.admission import RecentReads


def test_the_first_read_is_cold_and_the_second_is_admitted() -> None:
    reads = RecentReads(min_reads=2)
    session = uuid.uuid4()
    assert not reads.admitted(session)
    assert reads.read(session) is False
    assert reads.admitted(session) is False
    assert reads.read(session) is True
    assert reads.admitted(session) is True


def test_one_read_is_enough_when_configured_so() -> None:
    reads = RecentReads(min_reads=1)
    assert reads.read(uuid.uuid4()) is True


def test_memory_stays_bounded_and_a_session_read_often_stays_admitted() -> None:
    reads = RecentReads(min_reads=2, capacity=100)
    hot = uuid.uuid4()
    reads.read(hot)
    for _ in range(1000):
        reads.read(uuid.uuid4())
        assert reads.read(hot)
    assert len(reads._current) + len(reads._previous) <= 100


def test_a_session_not_read_lately_is_forgotten() -> None:
    reads = RecentReads(min_reads=2, capacity=10)
    once = uuid.uuid4()
    reads.read(once)
    for _ in range(10):
        reads.read(uuid.uuid4())
    assert reads.read(once) is False
