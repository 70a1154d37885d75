"""The booking write path's fast path: its round trips to PostgreSQL, the one-statement fit
check (the same answers as `offer` + `fits`), the stored rows equal to the answers, and the
outcome handed to the API in the worker's completion signal.

The hold is the hot write (docs/performance.md, the holds scenario): these tests keep its round
trips from creeping back. Counted: every statement the engine sends, every COMMIT, and the
pool's pre-ping (if any) on each checkout.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, text

from salon.bookings import fit
from salon.bookings.fit import fit_check, fit_params
from salon.infra.pii import pii_codec
from salon.public_times.free_times import Window, fits, offer
from salon.write_path import execute, model, submit
from tests.integration import test_bookings
from tests.integration.test_bookings import CUSTOMER, DAY, customer, expire_hold, hold, slot_id

salon = test_bookings.salon  # the fixture: a location, two stylists, a day of slots


def rows(container, statement: str, **params: Any) -> list[Any]:
    with container.engine.connect() as conn:
        return list(conn.execute(text(statement), params))


class RoundTrips:
    def __init__(self) -> None:
        self.by_side: Counter[str] = Counter()
        self.statements: dict[str, list[str]] = {"api": [], "worker": []}
        self.lock = threading.Lock()

    def add(self, what: str) -> None:
        # The in-process API runs in the test's thread; the Dramatiq worker in its own.
        side = "api" if threading.current_thread() is threading.main_thread() else "worker"
        with self.lock:
            self.by_side[side] += 1
            self.statements[side].append(what)

    def reset(self) -> None:
        with self.lock:
            self.by_side.clear()
            self.statements = {"api": [], "worker": []}


@pytest.fixture
def round_trips(container) -> Iterator[RoundTrips]:  # type: ignore[no-untyped-def]
    counts = RoundTrips()
    engine = container.engine

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts.add(" ".join(statement.split())[:90])

    def on_commit(conn: Any) -> None:
        counts.add("COMMIT")

    def on_checkout(*args: Any) -> None:
        if engine.pool._pre_ping:
            counts.add("(pre-ping)")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
        event.remove(engine.pool, "checkout", on_checkout)


def test_a_hold_and_a_confirm_take_few_round_trips(api, salon, container, settings, round_trips):
    me = customer(settings)
    # Warm: the first write of a process pays for metadata and prepared caches.
    hold(api, customer(settings), salon, slot_id(container, salon["stylists"][1], 9))
    slot = slot_id(container, salon["stylists"][0], 10)
    round_trips.reset()
    resp = hold(api, me, salon, slot)
    assert resp.status_code == 201, resp.text
    held = dict(round_trips.by_side)
    # API: the record's INSERT (autocommit) and nothing else: the outcome came with the signal.
    # Worker: the record FOR UPDATE, slot + locks, hold count + fit check, booking + event,
    # the record's UPDATE, COMMIT (was 19 statements, 21 round trips with the pool's
    # pre-pings; the API had 6). The implicit BEGIN is not counted, before or now.
    assert held["api"] <= 1 and held["worker"] <= 6, round_trips.statements
    assert not [s for s in round_trips.statements["worker"] if "SAVEPOINT" in s]
    round_trips.reset()
    confirmed = api.post(f"/v1/bookings/{resp.json['booking_id']}/confirm", me, {})
    assert confirmed.status_code == 200, confirmed.text
    # Worker: FOR UPDATE, the booking locked with the clock, its change + event, the record's
    # UPDATE, COMMIT (was 10; the API 6).
    assert round_trips.by_side["api"] <= 1, round_trips.statements
    assert round_trips.by_side["worker"] <= 5, round_trips.statements


def test_the_stored_booking_and_its_event_are_the_answer(api, salon, container, settings):
    me = customer(settings)
    plain = hold(api, me, salon, slot_id(container, salon["stylists"][0], 11))
    consent = {"sms": True, "marketing": False}
    full = hold(
        api,
        me,
        salon,
        slot_id(container, salon["stylists"][1], 11),
        consent=consent,
        notes="fringe only",
        source="app",
    )
    assert plain.status_code == full.status_code == 201, (plain.text, full.text)
    for resp, stored_consent in ((plain, None), (full, consent)):
        b = resp.json
        assert api.get(f"/v1/bookings/{b['booking_id']}", me).json == b
        events = rows(
            container,
            "SELECT topic, payload FROM scheduler.outbox_events WHERE aggregate_id = :id"
            " ORDER BY id",
            id=b["booking_id"],
        )
        # The answer, its PII masked: events never carry a customer's phone, email or notes.
        masked = {
            **b,
            "customer": {**b["customer"], "phone": "***78", "email": "a***@example.com"},
            "notes": "***" if b["notes"] else None,
        }
        assert [(e.topic, e.payload) for e in events] == [("booking.held", masked)]
        (row,) = rows(
            container,
            "SELECT consent, consent IS NULL AS sql_null, created_at, updated_at,"
            " hold_expires_at - created_at AS ttl FROM scheduler.bookings WHERE id = :id",
            id=b["booking_id"],
        )
        # As the ORM's JSONB type stored it: no consent is JSON null, not SQL NULL.
        assert row.consent == stored_consent and not row.sql_null
        assert row.created_at == row.updated_at
        assert row.ttl == dt.timedelta(seconds=settings.hold_ttl_seconds)
    assert full.json["notes"] == "fringe only" and full.json["source"] == "app"


def test_holding_over_a_stale_hold_expires_it_with_its_event_first(api, salon, container, settings):
    slot = slot_id(container, salon["stylists"][0], 14)
    stale = hold(api, customer(settings), salon, slot).json
    expire_hold(container, stale["booking_id"])
    fresh = hold(api, customer(settings), salon, slot)
    assert fresh.status_code == 201, fresh.text
    events = rows(
        container,
        "SELECT topic, aggregate_id FROM scheduler.outbox_events WHERE aggregate_id IN (:a, :b)"
        " ORDER BY id",
        a=stale["booking_id"],
        b=fresh.json["booking_id"],
    )
    assert [(e.topic, str(e.aggregate_id)) for e in events] == [
        ("booking.held", stale["booking_id"]),
        ("booking.expired", stale["booking_id"]),
        ("booking.held", fresh.json["booking_id"]),
    ]


def test_a_refused_hold_undoes_its_stale_hold_expiry(api, salon, container, settings):
    """The expiry runs in the hold's statement; a refusal (here the hold limit) rolls it back,
    as before, so a refused write leaves nothing but its recorded refusal."""
    zoe, yan = salon["stylists"]
    stale = hold(api, customer(settings), salon, slot_id(container, yan, 16)).json
    expire_hold(container, stale["booking_id"])
    me = customer(settings)
    for hour in (9, 12, 14):  # another stylist's time: these expire none of Yan's holds
        assert hold(api, me, salon, slot_id(container, zoe, hour)).status_code == 201
    # Yan at 09:00: the stale hold at 16:00 is within the hold's expiry reach (24 h).
    refused = hold(api, me, salon, slot_id(container, yan, 9))
    assert refused.status_code == 409 and refused.json["type"].endswith("/hold-limit-reached")
    (status,) = rows(
        container, "SELECT status FROM scheduler.bookings WHERE id = :id", id=stale["booking_id"]
    )
    assert status.status == "held"


def _every_start(container, stylist: str) -> list[dt.datetime]:
    return [
        r.start_at
        for r in rows(
            container,
            "SELECT start_at FROM scheduler.slot_instances WHERE stylist_id = :s"
            " AND local_date = :d ORDER BY start_at",
            s=stylist,
            d=DAY,
        )
    ]


def test_the_one_statement_fit_check_agrees_with_offer_and_fits(api, salon, container, settings):
    """`fit_check` (what a hold runs) against `offer` + `fits` (the rule availability lists),
    at every start of a day: bookings, an expired hold, a blocked slot, a service with a
    buffer and a per-stylist override, the notice and horizon edges, and refusals."""
    zoe, yan = (uuid.UUID(s) for s in salon["stylists"])
    location, cut = uuid.UUID(salon["location"]), uuid.UUID(salon["service"])
    me = customer(settings)
    assert hold(api, me, salon, slot_id(container, str(zoe), 10, 15)).status_code == 201
    gone = hold(api, customer(settings), salon, slot_id(container, str(zoe), 15)).json
    kept = hold(api, customer(settings), salon, slot_id(container, str(yan), 12)).json
    expire_hold(container, gone["booking_id"])
    with container.engine.begin() as conn:
        conn.execute(
            text("UPDATE scheduler.slot_instances SET status = 'blocked' WHERE id = :id"),
            {"id": slot_id(container, str(zoe), 13, 30)},
        )
    long = api.post(
        "/admin/v1/services",
        salon["admin"],
        {
            "location_id": salon["location"],
            "name": "Colour",
            "duration_minutes": 90,
            "buffer_minutes": 15,
            "stylist_ids": [str(yan)],
            "duration_overrides": {str(yan): 45},
        },
    ).json
    other_place = api.post(
        "/admin/v1/locations", salon["admin"], {"name": "Lyon", "timezone": "Europe/Paris"}
    ).json
    elsewhere = api.post(
        "/admin/v1/services",
        salon["admin"],
        {"location_id": other_place["id"], "name": "Cut", "duration_minutes": 30},
    ).json
    day_start = dt.datetime.combine(DAY, dt.time(0), dt.UTC)
    cases = [
        (stylist, service, exclude)
        for stylist in (zoe, yan)
        for service in (cut, uuid.UUID(long["id"]), uuid.UUID(elsewhere["id"]), uuid.uuid4())
        for exclude in (None, uuid.UUID(kept["booking_id"]))
    ]
    compared = 0
    with container.sessions() as s:
        now = s.execute(text("SELECT now()")).scalar_one()
        # Windows that cut the day: from late morning (notice), up to mid-afternoon (horizon).
        notice = int((day_start + dt.timedelta(hours=10, minutes=20) - now).total_seconds() // 60)
        horizon = (DAY - now.date()).days
        windows = [
            (settings.min_notice_minutes, settings.booking_horizon_days),
            (notice, settings.booking_horizon_days),
            (settings.min_notice_minutes, horizon),
        ]
        for stylist, service, exclude in cases:
            try:
                o = offer(s, location, service, stylist)
                refusal = None
            except Exception as exc:  # NotFound: the hold's 422
                o, refusal = None, getattr(exc, "detail", str(exc))
            for notice_minutes, horizon_days in windows:
                window = Window.from_now(now, notice_minutes, horizon_days)
                for start in _every_start(container, str(stylist)):
                    got = fit_check(
                        s,
                        fit_params(
                            location, service, stylist, start, notice_minutes, horizon_days, exclude
                        ),
                    )
                    assert got.now == now
                    assert got.not_offered(location, service, stylist) == refusal
                    if o is None:
                        assert not got.fits
                        continue
                    want = fits(s, o, stylist, start, window, exclude)
                    assert got.fits == want, (stylist, service, exclude, start, window)
                    assert (got.minutes, got.need) == (o.durations[stylist], o.needs[stylist])
                    compared += 1
    assert compared > 500


def test_the_api_answers_from_the_signal_without_reading_the_write_back(
    api, salon, container, settings, monkeypatch
):
    def no_read_back(*args: Any) -> None:
        raise AssertionError("the outcome should have come with the signal")

    monkeypatch.setattr(submit, "find_outcome", no_read_back)
    me = customer(settings)
    resp = hold(api, me, salon, slot_id(container, salon["stylists"][0], 16))
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"] == f"/v1/bookings/{resp.json['booking_id']}"
    monkeypatch.undo()
    assert api.get(resp.headers["Location"], me).json == resp.json
    state = api.get(f"/v1/requests/{resp.headers['X-Write-Id']}", me).json
    assert (state["status"], state["http_status"], state["result"]) == (
        "succeeded",
        201,
        resp.json,
    )
    refused = hold(api, customer(settings), salon, slot_id(container, salon["stylists"][0], 16))
    assert refused.status_code == 409 and refused.json["type"].endswith("/slot-unavailable")


def test_a_signal_without_the_outcome_falls_back_to_reading_it(
    api, salon, container, settings, monkeypatch
):
    monkeypatch.setattr(execute, "done_signal", lambda outcome: "1")  # an older worker's signal
    me = customer(settings)
    resp = hold(api, me, salon, slot_id(container, salon["stylists"][1], 17))
    assert resp.status_code == 201, resp.text
    assert api.get(resp.headers["Location"], me).json == resp.json


def test_a_redelivery_signals_the_first_stored_outcome(api, salon, container, settings):
    me = customer(settings)
    resp = hold(api, me, salon, slot_id(container, salon["stylists"][1], 10))
    assert resp.status_code == 201, resp.text
    write_id = uuid.UUID(resp.headers["X-Write-Id"])
    key = model.done_key(settings.redis_namespace, write_id)
    container.redis.delete(key)
    again = execute.execute(container, write_id)  # the message delivered a second time
    # Stored and signalled with the customer's PII sealed; the API opens it for the answer.
    pii = pii_codec(settings)
    assert again is not None and again.status == 201
    assert again.body["customer"]["phone"] != resp.json["customer"]["phone"]
    assert model.revealed(pii, write_id, again) == replace(again, body=resp.json)
    signalled = json.loads(container.redis.lpop(key))
    assert signalled == {"status": 201, "body": again.body, "location": resp.headers["Location"]}
    # The same key replayed: the stored answer, nothing new.
    body = {"slot_id": resp.json["slot_id"], "service_id": salon["service"], "customer": CUSTOMER}
    key_again = api.post("/v1/bookings", me, body, key=str(uuid.uuid4()))
    assert key_again.status_code == 409  # a new key for the same time: taken by the first


def test_a_hold_the_exclusion_constraint_refuses_is_a_409_and_leaves_nothing(
    api, salon, container, settings, monkeypatch
):
    """The last word: with the fit check made to pass regardless, the second hold on a taken
    time reaches the INSERT, PostgreSQL refuses it, the hold's transaction (no savepoint) is
    rolled back whole, and the refusal is stored in a transaction of its own."""

    stylist = salon["stylists"][0]
    first = hold(api, customer(settings), salon, slot_id(container, stylist, 12))
    assert first.status_code == 201, first.text
    monkeypatch.setattr(fit, "_require_fit", lambda check, slot, service: (60, 60))
    second = hold(api, customer(settings), salon, slot_id(container, stylist, 12, 30))
    assert second.status_code == 409, second.text
    assert second.json["type"].endswith("/slot-unavailable")
    assert second.json["detail"] == "that time was just taken; choose another"
    write_id = second.headers["X-Write-Id"]
    (record,) = rows(
        container,
        "SELECT status, http_status FROM scheduler.idempotency_keys WHERE id = :id",
        id=write_id,
    )
    assert (record.status, record.http_status) == ("failed", 409)
    assert not rows(container, "SELECT 1 FROM scheduler.bookings WHERE id = :id", id=write_id)
    assert not rows(
        container, "SELECT 1 FROM scheduler.outbox_events WHERE aggregate_id = :id", id=write_id
    )
