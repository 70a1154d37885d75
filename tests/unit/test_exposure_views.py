"""What a new exposure shows and stores, made from day-list rows without building `Candidate`s:
the same text as from the objects (UUIDs, RFC 3339 in UTC, the location's wall clock, also on
days when the clocks change)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models.exposure import Candidate, row_of
from models.tables import Location, Service
from salon.encoding import rfc3339
from salon.public_times.exposures import _candidate_from, _row_doc, _row_view
from salon.public_times.free_times import Offer

MIN = dt.timedelta(minutes=1)

# Days when the clocks change (and one when they do not), in zones with whole-hour,
# half-hour and no changes.
CASES = [
    ("America/New_York", dt.date(2026, 3, 8)),
    ("America/New_York", dt.date(2026, 11, 1)),
    ("Europe/London", dt.date(2026, 3, 29)),
    ("Australia/Lord_Howe", dt.date(2026, 4, 5)),
    ("Asia/Kolkata", dt.date(2026, 6, 10)),
]


def _offer(zone_name: str, durations: dict[uuid.UUID, int], buffer: int) -> Offer:
    location = Location(id=uuid.uuid4(), biz_entity_id=uuid.uuid4(), timezone=zone_name)
    service = Service(
        id=uuid.uuid4(), duration_minutes=60, buffer_minutes=buffer, price=Decimal("10")
    )
    needs = {s: d + buffer for s, d in durations.items()}
    return Offer(location, ZoneInfo(zone_name), service, needs, durations)


def _day_of_candidates(o: Offer, day: dt.date, rng: random.Random) -> list[Candidate]:
    """Starts every 15 minutes across the whole local day (through the clock change)."""
    midnight = dt.datetime.combine(day, dt.time(), o.zone).astimezone(dt.UTC)
    out = []
    for stylist, minutes in o.durations.items():
        for step in range(0, 26 * 4):
            start = midnight + step * 15 * MIN
            end = start + (minutes + o.service.buffer_minutes) * MIN
            out.append(
                Candidate(
                    key=f"{stylist}@{start:%Y%m%dT%H%M%SZ}",
                    stylist_id=stylist,
                    slot_id=uuid.uuid4(),
                    start_at=start,
                    end_at=end,
                    local_start=start.astimezone(o.zone),
                    gap_before=rng.choice([0, 15, 45]) * MIN,
                    gap_after=rng.choice([0, 30, 90]) * MIN,
                )
            )
    return out


def _reference_view(o: Offer, c: Candidate) -> dict[str, object]:
    """How the view was made from a `Candidate` before rows (the API's contract)."""
    service_end = c.start_at + dt.timedelta(minutes=o.durations.get(c.stylist_id, 0))
    return {
        "slot_id": str(c.slot_id),
        "stylist_id": str(c.stylist_id),
        "start_at": rfc3339(c.start_at),
        "end_at": rfc3339(service_end),
        "local_start": c.start_at.astimezone(o.zone).isoformat(),
        "local_end": service_end.astimezone(o.zone).isoformat(),
    }


@pytest.mark.parametrize(("zone_name", "day"), CASES)
def test_a_rows_view_is_the_candidates_view(zone_name: str, day: dt.date) -> None:
    rng = random.Random(day.toordinal())
    stylists = {uuid.uuid4(): 45, uuid.uuid4(): 90}
    o = _offer(zone_name, stylists, buffer=15)
    candidates = _day_of_candidates(o, day, rng)
    for c in candidates:
        assert _row_view(o, row_of(c)) == _reference_view(o, c)
    # A stylist the offer does not know (dropped from the service meanwhile) shows a zero-length
    # service, as before.
    stranger = candidates[0]
    stranger_row = (stranger.key, uuid.uuid4().hex, *row_of(stranger)[2:])
    view = _row_view(o, stranger_row)  # type: ignore[arg-type]
    assert view["start_at"] == view["end_at"] == rfc3339(stranger.start_at)


@pytest.mark.parametrize(("zone_name", "day"), CASES)
def test_a_rows_stored_doc_reads_back_as_the_same_candidate(zone_name: str, day: dt.date) -> None:
    rng = random.Random(day.toordinal() + 1)
    o = _offer(zone_name, {uuid.uuid4(): 30}, buffer=0)
    for c in _day_of_candidates(o, day, rng):
        doc = _row_doc(row_of(c))
        assert doc["stylist_id"] == str(c.stylist_id) and doc["slot_id"] == str(c.slot_id)
        assert _candidate_from(o, doc) == c
