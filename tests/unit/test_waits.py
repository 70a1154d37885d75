"""Waiting places: a few writes per API process wait their whole wait; the others only while
the workers answer, so that writes waiting on stopped workers never hold every thread."""

from __future__ import annotations

import pytest

from salon.settings import Settings
from salon.write_path.waits import WaitingPlaces


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("waiting", "threads", "places"), [(4, 8, 4), (4, 4, 3), (16, 8, 7), (4, 1, 0), (0, 8, 0)]
)
def test_the_places_always_leave_a_thread_free(waiting: int, threads: int, places: int) -> None:
    settings = Settings(api_waiting_writes=waiting, api_threads=threads)
    assert settings.waiting_writes() == places


def test_a_write_beyond_the_places_waits_only_while_writes_are_answered() -> None:
    clock = Clock()
    places = WaitingPlaces(2, window=0.25, clock=clock)
    assert not places.flowing()  # nothing answered yet, no burst begun: 202 at once
    assert places.take() and places.take()
    assert not places.take()  # all taken
    # A burst begins with a window of credit: writes beyond the places wait that long.
    assert places.flowing()
    clock.now += 0.2
    places.answered()
    clock.now += 0.2
    assert places.flowing()  # answered 0.2 s ago
    clock.now += 0.1
    assert not places.flowing()  # the workers stopped answering: let go of the thread
    places.leave()
    assert places.take()  # a place is free again; one was still taken: no new credit
    assert not places.flowing()


def test_a_burst_after_a_quiet_spell_gets_a_new_window() -> None:
    clock = Clock()
    places = WaitingPlaces(1, window=0.25, clock=clock)
    assert places.take()
    places.leave()
    clock.now += 60
    assert not places.flowing()
    assert places.take()
    assert places.flowing()


def test_no_places_no_credit() -> None:
    """One thread: no write may hold it for a whole wait, nor begin a burst's credit."""
    places = WaitingPlaces(0, window=0.25, clock=Clock())
    assert not places.take()
    assert not places.flowing()
