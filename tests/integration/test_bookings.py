"""Bookings through the queue with a real worker: hold, confirm, cancel, reschedule, expiry,
and PostgreSQL refusing every double booking under concurrency."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from models.tables import Booking, OutboxEvent
from tests.conftest import token_for
from tests.integration.conftest import slot_at

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=12)
ZONE = ZoneInfo("Europe/Paris")
CUSTOMER = {"name": "Ana Lopez", "phone": "+33 6 12 34 56 78", "email": "ana@example.com"}


@pytest.fixture
def salon(api, admin_token, worker, settings, tenant):  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token, name="Paris", timezone="Europe/Paris", stylists=("Zoe", "Yan"), days=(DAY, DAY)
    )
    assert opened["job"]["created"] == 2 * 36
    return {
        "location": opened["location"],
        "stylists": opened["stylists"],
        "service": opened["service"],
        "admin": admin_token,
        "tenant": tenant,
    }


def slot_id(container, stylist: str, hour: int, minute: int = 0) -> str:
    return slot_at(container, stylist, dt.datetime.combine(DAY, dt.time(hour, minute), ZONE))


def customer(settings) -> str:
    return token_for(settings, "user", None)


def expire_hold(container, booking_id: str) -> None:
    """Make a hold's expiry pass (a second ago), without the sweep marking it."""
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler.bookings SET hold_expires_at = now() - interval '1s'"
                " WHERE id = :id"
            ),
            {"id": booking_id},
        )


def hold(api, token, salon, slot, **extra):
    return api.post(
        "/v1/bookings",
        token,
        {"slot_id": slot, "service_id": salon["service"], "customer": CUSTOMER, **extra},
    )


def test_a_hold_is_201_with_its_expiry_and_readable_only_by_its_owner(
    api, salon, container, settings
):
    me = customer(settings)
    resp = hold(api, me, salon, slot_id(container, salon["stylists"][0], 10), source="app")
    assert resp.status_code == 201, resp.text
    b = resp.json
    assert b["status"] == "held" and b["stylist_id"] == salon["stylists"][0]
    assert b["start_at"] == dt.datetime.combine(DAY, dt.time(10), ZONE).astimezone(
        dt.UTC
    ).isoformat().replace("+00:00", "Z")
    expires = dt.datetime.fromisoformat(b["hold_expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=10)
    assert resp.headers["Location"] == f"/v1/bookings/{b['booking_id']}"
    assert api.get(resp.headers["Location"], me).json == b
    assert api.get(resp.headers["Location"], customer(settings)).status_code == 404
    mine = api.get("/v1/bookings", me).json
    assert [x["booking_id"] for x in mine["items"]] == [b["booking_id"]]
    with container.sessions() as s:
        topics = s.scalars(
            select(OutboxEvent.topic).where(OutboxEvent.aggregate_id == uuid.UUID(b["booking_id"]))
        ).all()
    assert topics == ["booking.held"]


def test_fifty_concurrent_holds_on_one_time_give_exactly_one_booking(
    api, salon, container, settings
):
    slot = slot_id(container, salon["stylists"][0], 11)
    results: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        status = hold(api, customer(settings), salon, slot).status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 49
    with container.sessions() as s:
        live = s.scalar(
            select(func.count()).where(
                Booking.stylist_id == uuid.UUID(salon["stylists"][0]),
                Booking.status.in_(("held", "confirmed")),
            )
        )
    assert live == 1


def test_a_60_minute_hold_at_10_blocks_starts_from_0915_to_1045(api, salon, container, settings):
    stylist = salon["stylists"][1]
    assert hold(api, customer(settings), salon, slot_id(container, stylist, 10)).status_code == 201
    for hour, minute in [(9, 15), (9, 45), (10, 0), (10, 45)]:
        resp = hold(api, customer(settings), salon, slot_id(container, stylist, hour, minute))
        assert resp.status_code == 409, (hour, minute, resp.text)
        assert resp.json["type"].endswith("/slot-unavailable")
    for hour in (9, 11):
        assert (
            hold(api, customer(settings), salon, slot_id(container, stylist, hour)).status_code
            == 201
        )


def test_confirm_is_idempotent_and_refused_when_expired_or_foreign(api, salon, container, settings):
    me = customer(settings)
    b = hold(api, me, salon, slot_id(container, salon["stylists"][0], 13)).json
    url = f"/v1/bookings/{b['booking_id']}/confirm"
    assert api.post(url, customer(settings), {}).status_code == 404
    first = api.post(url, me, {})
    assert first.status_code == 200 and first.json["status"] == "confirmed"
    again = api.post(url, me, {})
    assert again.status_code == 200 and again.json == first.json
    late = hold(api, me, salon, slot_id(container, salon["stylists"][0], 15)).json
    expire_hold(container, late["booking_id"])
    expired = api.post(f"/v1/bookings/{late['booking_id']}/confirm", me, {})
    assert expired.status_code == 409 and expired.json["type"].endswith("/hold-expired")
    assert api.get(f"/v1/bookings/{late['booking_id']}", me).json["status"] == "expired"


def test_an_expired_hold_blocks_nobody_even_before_the_sweep(api, salon, container, settings):
    slot = slot_id(container, salon["stylists"][1], 16)
    first = hold(api, customer(settings), salon, slot).json
    expire_hold(container, first["booking_id"])
    second = hold(api, customer(settings), salon, slot)
    assert second.status_code == 201, second.text
    with container.sessions() as s:
        assert s.get(Booking, uuid.UUID(first["booking_id"])).status == "expired"


def test_a_customer_may_hold_at_most_three_times_at_once(api, salon, container, settings):
    me = customer(settings)
    stylist = salon["stylists"][0]
    for hour in (9, 12, 14):
        assert hold(api, me, salon, slot_id(container, stylist, hour)).status_code == 201
    fourth = hold(api, me, salon, slot_id(container, stylist, 16))
    assert fourth.status_code == 409 and fourth.json["type"].endswith("/hold-limit-reached")


def test_cancel_respects_the_cut_off_for_customers_but_not_for_staff(
    api, salon, container, settings
):
    me = customer(settings)
    b = hold(api, me, salon, slot_id(container, salon["stylists"][1], 12)).json
    api.post(f"/v1/bookings/{b['booking_id']}/confirm", me, {})
    with container.engine.begin() as conn:  # the appointment is now in 3 hours
        conn.execute(
            text(
                "UPDATE scheduler.bookings SET start_at = now() + interval '3 hours',"
                " end_at = now() + interval '4 hours', slot_id = NULL WHERE id = :id"
            ),
            {"id": b["booking_id"]},
        )
    late = api.post(f"/v1/bookings/{b['booking_id']}/cancel", me, {"reason": "sick"})
    assert late.status_code == 409 and late.json["type"].endswith("/cancellation-window-closed")
    staff = api.patch(
        f"/admin/v1/bookings/{b['booking_id']}",
        salon["admin"],
        {"action": "cancel", "reason": "called the salon"},
    )
    assert staff.status_code == 200 and staff.json["status"] == "cancelled"
    assert staff.json["cancel_reason"] == "called the salon"


def test_reschedule_is_atomic(api, salon, container, settings):
    me, other = customer(settings), customer(settings)
    stylist = salon["stylists"][0]
    b = hold(api, me, salon, slot_id(container, stylist, 9)).json
    api.post(f"/v1/bookings/{b['booking_id']}/confirm", me, {})
    taken = hold(api, other, salon, slot_id(container, stylist, 14)).json
    assert taken["status"] == "held"
    refused = api.post(
        f"/v1/bookings/{b['booking_id']}/reschedule",
        me,
        {"slot_id": slot_id(container, stylist, 14, 30)},
    )
    assert refused.status_code == 409
    assert api.get(f"/v1/bookings/{b['booking_id']}", me).json["start_at"] == b["start_at"]
    # Moving by 30 minutes overlaps its own old time: allowed, and the old time is freed.
    moved = api.post(
        f"/v1/bookings/{b['booking_id']}/reschedule",
        me,
        {"slot_id": slot_id(container, stylist, 9, 30)},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json["status"] == "confirmed" and moved.json["start_at"] != b["start_at"]
    with container.sessions() as s:
        topics = s.scalars(
            select(OutboxEvent.topic)
            .where(OutboxEvent.aggregate_id == uuid.UUID(b["booking_id"]))
            .order_by(OutboxEvent.id)
        ).all()
    assert topics == ["booking.held", "booking.confirmed", "booking.rescheduled"]


def test_the_sweep_expires_every_lapsed_hold_in_batches_with_one_event_each(
    api, salon, container, settings
):
    from sqlalchemy import event

    from salon.bookings.holds import sweep_lapsed_holds

    made = [
        hold(api, customer(settings), salon, slot_id(container, s, h)).json
        for s in salon["stylists"]
        for h in (9, 11, 13, 15)
    ]
    live = made.pop()  # not lapsed: left alone
    for b in made:
        expire_hold(container, b["booking_id"])
    commits: list[int] = []

    def committed(conn: object) -> None:
        commits.append(1)

    event.listen(container.engine, "commit", committed)
    try:
        # At least ours (another test may leave lapsed holds in the shared database).
        assert sweep_lapsed_holds(container, batch=3) >= 7
    finally:
        event.remove(container.engine, "commit", committed)
    assert len(commits) >= 3  # 3 + 3 + 1: a transaction per batch
    with container.sessions() as s:
        statuses = {
            str(b.id): b.status
            for b in s.scalars(select(Booking).where(Booking.biz_entity_id == salon["tenant"]))
        }
        expired_events = s.scalars(
            select(OutboxEvent.aggregate_id).where(
                OutboxEvent.topic == "booking.expired",
                OutboxEvent.aggregate_id.in_([uuid.UUID(b["booking_id"]) for b in [*made, live]]),
            )
        ).all()
    assert {statuses[b["booking_id"]] for b in made} == {"expired"}
    assert statuses[live["booking_id"]] == "held"
    assert sorted(map(str, expired_events)) == sorted(b["booking_id"] for b in made)
    assert sweep_lapsed_holds(container, batch=3) == 0  # nothing twice


def test_the_sweep_skips_a_hold_being_changed_without_waiting_for_it(
    api, salon, container, settings
):
    from salon.bookings.holds import sweep_lapsed_holds

    busy = hold(api, customer(settings), salon, slot_id(container, salon["stylists"][1], 9)).json
    idle = hold(api, customer(settings), salon, slot_id(container, salon["stylists"][1], 11)).json
    # Lapsed holds other tests left in this database are swept first: the count below is this
    # test's own (the order of tests differs between xdist workers).
    sweep_lapsed_holds(container)
    for b in (busy, idle):
        expire_hold(container, b["booking_id"])
    swept: list[int] = []
    with container.engine.connect() as other, other.begin():
        # A confirm of it holds the row now.
        other.execute(
            text("SELECT 1 FROM scheduler.bookings WHERE id = :id FOR UPDATE"),
            {"id": busy["booking_id"]},
        )
        sweep = threading.Thread(target=lambda: swept.append(sweep_lapsed_holds(container)))
        sweep.start()
        sweep.join(timeout=10)
        assert not sweep.is_alive(), "the sweep waited for a locked row"
    assert swept == [1]
    with container.sessions() as s:
        assert s.get(Booking, uuid.UUID(busy["booking_id"])).status == "held"
        assert s.get(Booking, uuid.UUID(idle["booking_id"])).status == "expired"
    assert sweep_lapsed_holds(container) == 1  # released: the next tick takes it


def test_unknown_slot_is_404_and_wrong_service_is_422(api, salon, container, settings):
    me = customer(settings)
    assert hold(api, me, salon, str(uuid.uuid4())).status_code == 404
    resp = api.post(
        "/v1/bookings",
        me,
        {
            "slot_id": slot_id(container, salon["stylists"][0], 10, 15),
            "service_id": str(uuid.uuid4()),
            "customer": CUSTOMER,
        },
    )
    assert resp.status_code == 422
    bad = api.post("/v1/bookings", me, {"slot_id": "x", "customer": {"name": ""}})
    assert bad.status_code == 422
    assert api.post("/v1/bookings", salon["admin"], {}).status_code == 403


def test_idempotency_keys_are_scoped_per_principal(api, salon, container, settings):
    key = str(uuid.uuid4())
    one = api.post(
        "/v1/bookings",
        customer(settings),
        {
            "slot_id": slot_id(container, salon["stylists"][0], 17),
            "service_id": salon["service"],
            "customer": CUSTOMER,
        },
        key=key,
    )
    two = api.post(
        "/v1/bookings",
        customer(settings),
        {
            "slot_id": slot_id(container, salon["stylists"][1], 13),
            "service_id": salon["service"],
            "customer": CUSTOMER,
        },
        key=key,
    )
    assert one.status_code == two.status_code == 201
    assert one.json["booking_id"] != two.json["booking_id"]


def test_a_move_to_another_stylist_waits_for_both_locks_holding_neither(
    api, salon, container, settings
):
    """A reschedule takes both stylists' locks in sorted order before the booking's row
    (the free runs' recount needs them): while the first is busy it holds neither, so two
    moves in opposite directions cannot deadlock."""
    me = customer(settings)
    first, second = sorted(salon["stylists"])
    booking = hold(api, me, salon, slot_id(container, second, 9)).json
    assert api.post(f"/v1/bookings/{booking['booking_id']}/confirm", me, {}).status_code == 200
    lock = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
    try_lock = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))")
    waiting = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND pid <> pg_backend_pid()"
    )
    answer: dict[str, object] = {}

    def move() -> None:
        answer["moved"] = api.post(
            f"/v1/bookings/{booking['booking_id']}/reschedule",
            me,
            {"slot_id": slot_id(container, first, 11)},
        )

    with container.engine.connect() as blocker, blocker.begin():
        blocker.execute(lock, {"k": f"stylist:{first}"})
        mover = threading.Thread(target=move)
        mover.start()
        with container.engine.connect() as probe:
            for _ in range(100):
                if probe.execute(waiting).scalar_one():
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the move never waited for the first stylist's lock")
        with container.engine.begin() as other:
            assert other.execute(try_lock, {"k": f"stylist:{second}"}).scalar_one()
    mover.join(timeout=30)
    moved = answer["moved"]
    assert moved.status_code == 200, moved.text  # type: ignore[attr-defined]
    assert moved.json["stylist_id"] == first  # type: ignore[attr-defined]
