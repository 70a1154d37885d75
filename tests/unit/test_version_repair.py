"""Which finishing times a run of the lost-bump watch checks."""

from __future__ import annotations

import datetime as dt

from salon.public_times.version_repair import LOOK_BACK, OVERLAP, RECEIPT_SECONDS, SETTLE, window

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def test_a_first_run_looks_back_and_leaves_the_unsettled_moments():
    assert window(NOW, None) == (NOW - LOOK_BACK - OVERLAP, NOW - SETTLE, False)


def test_a_next_run_starts_a_little_before_the_last_one_stopped():
    last = NOW - dt.timedelta(seconds=50)
    assert window(NOW, last) == (last - OVERLAP, NOW - SETTLE, False)


def test_a_run_after_a_long_pause_looks_back_as_far_as_receipts_live_and_says_so():
    long_ago = NOW - dt.timedelta(hours=5)
    assert window(NOW, long_ago) == (NOW - LOOK_BACK - OVERLAP, NOW - SETTLE, True)


def test_receipts_outlive_the_furthest_look_back():
    assert dt.timedelta(seconds=RECEIPT_SECONDS) > LOOK_BACK + OVERLAP + SETTLE
