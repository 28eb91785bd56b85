"""A session is asked of Redis only from its second read lately in a process."""

from __future__ import annotations

import uuid

import pytest

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


def test_memory_stays_fixed_and_a_session_read_often_stays_admitted() -> None:
    reads = RecentReads(min_reads=2, capacity=100)
    size = len(reads._current) + len(reads._previous)
    hot = uuid.uuid4()
    reads.read(hot)
    for _ in range(1000):
        reads.read(uuid.uuid4())
        assert reads.read(hot)
    assert len(reads._current) + len(reads._previous) == size


def test_few_first_reads_are_taken_for_second_ones() -> None:
    """Sessions share counters by their uuid's low bits: a collision asks Redis early, rarely."""
    reads = RecentReads(min_reads=2)
    early = sum(reads.read(uuid.uuid4()) for _ in range(20_000))
    assert early < 20_000 * 0.08  # at most 6 % (service.cache.admission), and some chance


def test_counts_stop_at_their_ceiling() -> None:
    reads = RecentReads(min_reads=2, capacity=10_000)
    session = uuid.uuid4()
    reads.read(session)
    # A byte counter would overflow at 256 reads.
    assert all(reads.read(session) for _ in range(1000))


def test_slots_are_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        RecentReads(min_reads=2, slots=1000)


def test_a_session_not_read_lately_is_forgotten() -> None:
    reads = RecentReads(min_reads=2, capacity=10)
    once = uuid.uuid4()
    reads.read(once)
    for _ in range(10):
        reads.read(uuid.uuid4())
    assert reads.read(once) is False
