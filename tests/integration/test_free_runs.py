"""The free runs PostgreSQL keeps (migration 0007) against a model of them, after random writes
made straight in SQL (no product code: the triggers must catch every way in), alone and many at
once; and `/v1/dates`'s count from them against the free starts listed from every slot."""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from salon.public_times.free_times import FREE_STARTS, Window, _params, free_days, offer

LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
FIRST = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)
DAYS = 4


@dataclass
class Place:
    location: uuid.UUID
    zone: ZoneInfo
    services: list[uuid.UUID]


@dataclass
class Salon:
    here: Place  # London: stylists a, b and c
    there: Place  # New York: stylist c too
    stylists: list[uuid.UUID]


def _insert(conn: Connection, sql: str, **values: Any) -> None:
    conn.execute(text(sql), values)


@pytest.fixture
def salon(container, tenant) -> Salon:  # type: ignore[no-untyped-def]
    here = Place(uuid.uuid4(), LONDON, [uuid.uuid4(), uuid.uuid4()])
    there = Place(uuid.uuid4(), NEW_YORK, [uuid.uuid4()])
    stylists = [uuid.uuid4() for _ in range(3)]
    with container.engine.begin() as conn:
        for n, place in enumerate((here, there)):
            _insert(
                conn,
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (:id, :biz, :name, :tz)",
                id=place.location,
                biz=tenant,
                name=f"Runs {n}",
                tz=place.zone.key,
            )
        for n, s in enumerate(stylists):
            _insert(
                conn,
                "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (:id, :biz, :n)",
                id=s,
                biz=tenant,
                n=f"S{n}",
            )
            _insert(
                conn,
                "INSERT INTO scheduler.stylist_locations VALUES (:s, :l)",
                s=s,
                l=here.location,
            )
        _insert(
            conn,
            "INSERT INTO scheduler.stylist_locations VALUES (:s, :l)",
            s=stylists[2],
            l=there.location,
        )
        # Needs that are not a multiple of any slot: 55 and 30 minutes; 40 over there.
        for place, minutes in ((here, (45, 30)), (there, (40,))):
            for service, duration in zip(place.services, minutes, strict=True):
                _insert(
                    conn,
                    "INSERT INTO scheduler.services (id, location_id, name, duration_minutes,"
                    " buffer_minutes, price) VALUES (:id, :l, 'Cut', :d, :b, 40)",
                    id=service,
                    l=place.location,
                    d=duration,
                    b=10 if duration == 45 else 0,
                )
    return Salon(here, there, stylists)


def _local(day: dt.date, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zone).astimezone(dt.UTC)


def _seed_slots(conn: Connection, salon: Salon, rng: random.Random) -> None:
    """Mixed lengths that touch (15-minute slots then 30-minute ones, one run), gaps, blocked
    slots, evenings running past midnight, and one stylist at two locations."""
    rows = []
    for place, stylists in ((salon.here, salon.stylists), (salon.there, salon.stylists[2:])):
        for s in stylists:
            for i in range(-1, DAYS + 1):
                day = FIRST + dt.timedelta(days=i)
                pieces = [(9, 0, 12, 0, 15), (12, 0, 14, 0, 30), (15, 0, 18, 0, 15)]
                if rng.random() < 0.5:
                    pieces.append((22, 0, 26, 0, 30))  # to 02:00 the next day
                for h0, m0, h1, m1, step in pieces:
                    start = _local(day, h0, m0, place.zone)
                    end = start + dt.timedelta(hours=h1 - h0, minutes=m1 - m0)
                    while start < end:
                        if rng.random() > 0.08:
                            stop = start + dt.timedelta(minutes=step)
                            status = "blocked" if rng.random() < 0.05 else "open"
                            local_date = start.astimezone(place.zone).date()
                            rows.append((place.location, s, local_date, start, stop, status))
                        start += dt.timedelta(minutes=step)
    for loc, s, local_date, start, stop, status in rows:
        conn.execute(
            text(
                "INSERT INTO scheduler.slot_instances (id, location_id, stylist_id, local_date,"
                " start_at, end_at, status) VALUES (:id, :l, :s, :d, :a, :b, :st)"
                " ON CONFLICT DO NOTHING"
            ),
            {
                "id": uuid.uuid4(),
                "l": loc,
                "s": s,
                "d": local_date,
                "a": start,
                "b": stop,
                "st": status,
            },
        )


def _slots(conn: Connection, salon: Salon) -> list[Any]:
    return list(
        conn.execute(
            text(
                "SELECT id, location_id, stylist_id, local_date, start_at, end_at, status"
                " FROM scheduler.slot_instances WHERE stylist_id = ANY(:s) ORDER BY start_at"
            ),
            {"s": salon.stylists},
        )
    )


def _try(conn: Connection, sql: str, **values: Any) -> bool:
    """One statement in a savepoint; False when PostgreSQL refused it (a double booking)."""
    try:
        with conn.begin_nested():
            conn.execute(text(sql), values)
        return True
    except Exception as e:
        assert "bookings_no_overlap" in str(e), e
        return False


def _book(
    conn: Connection, salon: Salon, tenant: uuid.UUID, slot: Any, minutes: int, status: str
) -> bool:
    return _try(
        conn,
        "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id, service_id,"
        " customer_name, customer_phone, status, start_at, end_at, hold_expires_at)"
        " VALUES (:id, :biz, :l, :s, :svc, 'C', '+1', :st, :a, :a + make_interval(mins => :m),"
        " CASE :st WHEN 'held' THEN now() + make_interval(mins => :x) END)",
        id=uuid.uuid4(),
        biz=tenant,
        l=slot.location_id,
        s=slot.stylist_id,
        svc=(salon.here if slot.location_id == salon.here.location else salon.there).services[0],
        st=status,
        a=slot.start_at,
        m=minutes,
        # Some holds have expired and not been swept: they hide nothing.
        x=-5 if slot.id.int % 3 == 0 else 30,
    )


def expected_runs(conn: Connection, salon: Salon) -> set[tuple[Any, ...]]:
    """The model: open slots no confirmed booking overlaps, cut where a gap is or the
    length changes, per location, local date and stylist."""
    confirmed = list(
        conn.execute(
            text(
                "SELECT stylist_id, start_at, end_at FROM scheduler.bookings"
                " WHERE stylist_id = ANY(:s) AND status = 'confirmed'"
            ),
            {"s": salon.stylists},
        )
    )
    free: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for sl in _slots(conn, salon):
        taken = any(
            b.stylist_id == sl.stylist_id and b.start_at < sl.end_at and b.end_at > sl.start_at
            for b in confirmed
        )
        if sl.status == "open" and not taken:
            free[(sl.location_id, sl.local_date, sl.stylist_id)].append(sl)
    runs = set()
    for key, slots in free.items():
        run: list[Any] = []
        for sl in slots:
            if run and (
                run[-1].end_at != sl.start_at
                or run[-1].end_at - run[-1].start_at != sl.end_at - sl.start_at
            ):
                runs.add((*key, run[0].start_at, run[-1].end_at, run[0].end_at - run[0].start_at))
                run = []
            run.append(sl)
        runs.add((*key, run[0].start_at, run[-1].end_at, run[0].end_at - run[0].start_at))
    return runs


def kept_runs(conn: Connection, salon: Salon) -> set[tuple[Any, ...]]:
    return set(
        map(
            tuple,
            conn.execute(
                text(
                    "SELECT location_id, local_date, stylist_id, start_at, end_at, step"
                    " FROM scheduler.free_runs WHERE stylist_id = ANY(:s)"
                ),
                {"s": salon.stylists},
            ),
        )
    )


def check_counts(container, salon: Salon) -> int:  # type: ignore[no-untyped-def]
    """Every service's calendar from the runs equals the free starts listed from the slots
    (distinct start times per local date). Returns how many starts there were."""
    now = dt.datetime.now(dt.UTC)
    window = Window.from_now(now, 0, 90)
    first, last = FIRST - dt.timedelta(days=1), FIRST + dt.timedelta(days=DAYS)
    total = 0
    with container.sessions() as session:
        for place in (salon.here, salon.there):
            for service in place.services:
                for stylist in (
                    None,
                    *(salon.stylists if place is salon.here else salon.stylists[2:]),
                ):
                    o = offer(session, place.location, service, stylist)
                    listed: dict[dt.date, set[dt.datetime]] = defaultdict(set)
                    for r in session.execute(FREE_STARTS, _params(o, first, last, window)):
                        listed[r.local_date].add(r.start_at)
                    counted = free_days(session, o, first, last, window).counts
                    assert counted == {d: len(v) for d, v in listed.items()}, (place, service)
                    total += sum(counted.values())
    return total


def _mutate(conn: Connection, salon: Salon, tenant: uuid.UUID, rng: random.Random) -> None:
    slots = _slots(conn, salon)
    bookings = list(
        conn.execute(
            text("SELECT id, status FROM scheduler.bookings WHERE stylist_id = ANY(:s)"),
            {"s": salon.stylists},
        )
    )
    slot = rng.choice(slots)
    kind = rng.choice(("delete", "flip", "flip many", "book", "confirm", "cancel", "move", "drop"))
    if kind == "delete":
        _try(conn, "DELETE FROM scheduler.slot_instances WHERE id = :id", id=slot.id)
    elif kind == "flip":
        _try(
            conn,
            "UPDATE scheduler.slot_instances SET status = CASE status WHEN 'open' THEN 'blocked'"
            " ELSE 'open' END WHERE id = :id",
            id=slot.id,
        )
    elif kind == "flip many":
        _try(
            conn,
            "UPDATE scheduler.slot_instances SET status = :st WHERE id = ANY(:ids)",
            st=rng.choice(("open", "blocked")),
            ids=[s.id for s in rng.sample(slots, 12)],
        )
    elif kind == "book":
        _book(
            conn, salon, tenant, slot, rng.choice((30, 55, 90)), rng.choice(("held", "confirmed"))
        )
    elif bookings and kind in ("confirm", "cancel", "move", "drop"):
        b = rng.choice(bookings)
        if kind == "confirm":
            _try(conn, "UPDATE scheduler.bookings SET status = 'confirmed' WHERE id = :id", id=b.id)
        elif kind == "cancel":
            _try(conn, "UPDATE scheduler.bookings SET status = 'cancelled' WHERE id = :id", id=b.id)
        elif kind == "move":
            _try(
                conn,
                "UPDATE scheduler.bookings SET start_at = start_at + :d, end_at = end_at + :d"
                " WHERE id = :id",
                id=b.id,
                d=dt.timedelta(minutes=rng.choice((-60, -15, 15, 45))),
            )
        else:
            _try(conn, "DELETE FROM scheduler.bookings WHERE id = :id", id=b.id)


def test_the_kept_runs_follow_every_write_and_count_what_the_slots_list(container, tenant, salon):
    rng = random.Random(20261204)
    with container.engine.begin() as conn:
        _seed_slots(conn, salon, rng)
        for slot in rng.sample(_slots(conn, salon), 40):
            _book(
                conn,
                salon,
                tenant,
                slot,
                rng.choice((30, 55, 90)),
                rng.choice(("held", "confirmed")),
            )
    with container.engine.connect() as conn:
        assert kept_runs(conn, salon) == expected_runs(conn, salon)
    first_total = check_counts(container, salon)
    assert first_total > 500  # the seed leaves plenty of starts to compare
    for round_ in range(12):
        with container.engine.begin() as conn:
            for _ in range(6):
                _mutate(conn, salon, tenant, rng)
        with container.engine.connect() as conn:
            assert kept_runs(conn, salon) == expected_runs(conn, salon), f"round {round_}"
        check_counts(container, salon)
    # An operator's full recount (as after a TRUNCATE) finds what the triggers kept.
    with container.engine.begin() as conn:
        kept = kept_runs(conn, salon)
        conn.execute(text("SELECT scheduler.recount_all_free_runs()"))
        assert kept_runs(conn, salon) == kept


def test_many_writers_at_once_leave_the_runs_exact(container, settings, tenant, salon):
    """Sixteen connections changing one stylist's days at once (bookings confirmed and
    cancelled, slots blocked, removed and put back), without taking the stylist's lock
    themselves (as an operator's SQL would): the triggers take it before they look, so the
    recounts follow each other and the last sees every commit. (Writers at REPEATABLE READ
    would recount from an older snapshot: the product writes at READ COMMITTED.)"""
    rng = random.Random(7)
    with container.engine.begin() as conn:
        _seed_slots(conn, salon, rng)
        ours = [s for s in _slots(conn, salon) if s.stylist_id == salon.stylists[0]]
        for slot in rng.sample(ours, 60):
            _book(conn, salon, tenant, slot, 30, "held")
    with container.engine.connect() as conn:
        held = [
            r.id
            for r in conn.execute(
                text("SELECT id FROM scheduler.bookings WHERE stylist_id = :s"),
                {"s": salon.stylists[0]},
            )
        ]
    assert len(held) > 20
    errors: list[BaseException] = []
    deadlocks = [0]
    start = threading.Barrier(16)

    engine = create_engine(settings.database_url, pool_size=16)

    def writer(n: int) -> None:
        mine = random.Random(n)
        try:
            with engine.connect() as conn:
                start.wait()
                for _ in range(25):
                    try:
                        with conn.begin():
                            if mine.random() < 0.5:
                                conn.execute(
                                    text(
                                        "UPDATE scheduler.bookings SET status = :st WHERE id = :id"
                                    ),
                                    {
                                        "st": mine.choice(("confirmed", "cancelled", "held")),
                                        "id": mine.choice(held),
                                    },
                                )
                            elif mine.random() < 0.5:
                                conn.execute(
                                    text(
                                        "UPDATE scheduler.slot_instances SET status = :st"
                                        " WHERE id = :id"
                                    ),
                                    {
                                        "st": mine.choice(("open", "blocked")),
                                        "id": mine.choice(ours).id,
                                    },
                                )
                            else:
                                # A slot taken away and put back: an insert racing the
                                # confirms must be counted by one of them.
                                conn.execute(
                                    text(
                                        "WITH gone AS (DELETE FROM scheduler.slot_instances"
                                        " WHERE id = :id RETURNING *)"
                                        " SELECT 1 FROM gone"
                                    ),
                                    {"id": mine.choice(ours).id},
                                )
                                slot = mine.choice(ours)
                                conn.execute(
                                    text(
                                        "INSERT INTO scheduler.slot_instances (id, location_id,"
                                        " stylist_id, local_date, start_at, end_at, status)"
                                        " VALUES (:id, :l, :s, :d, :a, :b, 'open')"
                                        " ON CONFLICT DO NOTHING"
                                    ),
                                    {
                                        "id": slot.id,
                                        "l": slot.location_id,
                                        "s": slot.stylist_id,
                                        "d": slot.local_date,
                                        "a": slot.start_at,
                                        "b": slot.end_at,
                                    },
                                )
                    except OperationalError as e:
                        # PostgreSQL chose a victim of a deadlock: rolled back, nothing half-done.
                        assert "deadlock detected" in str(e), e
                        deadlocks[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    engine.dispose()
    assert not errors, errors
    with container.engine.connect() as conn:
        assert kept_runs(conn, salon) == expected_runs(conn, salon)
    check_counts(container, salon)
