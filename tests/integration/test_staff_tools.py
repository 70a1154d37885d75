"""The front desk's tools with a real worker: booking a named customer (held or confirmed,
replayed by its key, no hold limit, the notice as the setting says), completing a booking,
a stylist reaching only their own bookings, and the day view of a DST day."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select, text

from models.ids import new_id
from models.tables import Booking
from salon.auth import Principal
from salon.bookings import holds
from salon.errors import SlotUnavailable
from salon.write_path.model import WriteContext
from tests.conftest import new_tenant, token_for
from tests.integration.conftest import book
from tests.integration.test_booking_rules import starts_in, topics
from tests.integration.test_bookings import CUSTOMER, customer, hold, salon, slot_id

__all__ = ["salon"]  # the fixture, shared with test_bookings

EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]
WALK_IN = {"name": "Bea Walk-In", "phone": "+33 6 00 00 00 01"}


def staff_book(api, token, salon, slot, key=None, **extra):  # type: ignore[no-untyped-def]
    return api.post(
        "/admin/v1/bookings",
        token,
        {"slot_id": slot, "service_id": salon["service"], "customer": WALK_IN, **extra},
        key=key,
    )


def live_count(container, stylist: str) -> int:  # type: ignore[no-untyped-def]
    with container.sessions() as s:
        return int(
            s.scalar(
                select(func.count()).where(
                    Booking.stylist_id == uuid.UUID(stylist),
                    Booking.status.in_(("held", "confirmed")),
                )
            )
            or 0
        )


def test_front_desk_holds_or_confirms_for_a_named_customer_and_a_replay_is_the_same(
    api, salon, container, settings
):
    desk = token_for(settings, "frontdesk", salon["tenant"])
    stylist = salon["stylists"][0]
    key = str(uuid.uuid4())
    held = staff_book(api, desk, salon, slot_id(container, stylist, 10), key=key, source="phone")
    assert held.status_code == 201, held.text
    b = held.json
    assert b["status"] == "held" and b["hold_expires_at"] is not None
    assert b["customer"] == {"name": WALK_IN["name"], "phone": WALK_IN["phone"], "email": None}
    assert held.headers["Location"] == f"/admin/v1/bookings/{b['booking_id']}"
    assert api.get(held.headers["Location"], desk).json["status"] == "held"
    assert topics(container, b["booking_id"]) == ["booking.held"]
    with container.sessions() as s:
        row = s.get(Booking, uuid.UUID(b["booking_id"]))
        # Nobody's customer account: no customer sees it under /v1, no hold limit counts it.
        assert row.user_id is None and row.source == "phone"

    again = staff_book(api, desk, salon, slot_id(container, stylist, 10), key=key, source="phone")
    assert again.status_code == 201 and again.json == b
    assert again.headers["Idempotent-Replayed"] == "true"
    assert live_count(container, stylist) == 1
    other_body = staff_book(api, desk, salon, slot_id(container, stylist, 12), key=key)
    assert other_body.status_code == 422

    done = staff_book(api, desk, salon, slot_id(container, stylist, 14), confirm=True)
    assert done.status_code == 201, done.text
    assert done.json["status"] == "confirmed" and done.json["hold_expires_at"] is None
    assert done.json["confirmed_at"] is not None
    assert topics(container, done.json["booking_id"]) == ["booking.confirmed"]
    # The held one is confirmed by staff later (a customer on the phone said yes).
    url = f"/admin/v1/bookings/{b['booking_id']}"
    confirmed = api.patch(url, desk, {"action": "confirm"})
    assert confirmed.status_code == 200 and confirmed.json["status"] == "confirmed"
    assert topics(container, b["booking_id"]) == ["booking.held", "booking.confirmed"]
    # The times are taken as a customer's are: a customer's hold there is refused.
    taken = hold(api, customer(settings), salon, slot_id(container, stylist, 14))
    assert taken.status_code == 409


def test_staff_are_not_held_to_the_customer_hold_limit(api, salon, container, settings):
    desk = token_for(settings, "frontdesk", salon["tenant"])
    stylist = salon["stylists"][1]
    hours = (9, 11, 13, 15, 17)
    assert settings.max_holds_per_customer < len(hours)
    results = [staff_book(api, desk, salon, slot_id(container, stylist, h)) for h in hours]
    assert [r.status_code for r in results] == [201] * len(hours), [r.text for r in results]
    assert all(r.json["status"] == "held" for r in results)
    assert live_count(container, stylist) == len(hours)


def test_staff_book_only_their_own_brand_and_never_as_a_customer(api, salon, container, settings):
    slot = slot_id(container, salon["stylists"][0], 16)
    other = token_for(settings, "admin", new_tenant(container))
    assert staff_book(api, other, salon, slot).status_code == 404
    # The customers' hold stays the customers': staff use the admin route.
    manager = token_for(settings, "manager", salon["tenant"])
    refused = api.post(
        "/v1/bookings",
        manager,
        {"slot_id": slot, "service_id": salon["service"], "customer": CUSTOMER},
    )
    assert refused.status_code == 403
    stylist = token_for(settings, "stylist", salon["tenant"], uuid.UUID(salon["stylists"][0]))
    assert staff_book(api, stylist, salon, slot).status_code == 403
    assert live_count(container, salon["stylists"][0]) == 0


@pytest.fixture
def soon(api, container, worker, settings, tenant):  # type: ignore[no-untyped-def]
    """A salon open around the clock today and tomorrow (UTC), and its first start at least
    30 minutes from now: inside the default notice (120 minutes)."""
    admin = token_for(settings, "admin", tenant)
    loc = api.post("/admin/v1/locations", admin, {"name": "Night", "timezone": "UTC"}).json
    person = api.post("/admin/v1/stylists", admin, {"name": "Owl", "location_ids": [loc["id"]]})
    service = api.post(
        "/admin/v1/services",
        admin,
        {"location_id": loc["id"], "name": "Trim", "duration_minutes": 30},
    ).json
    rule = {"location_id": loc["id"], "rule_kind": "WEEKLY", "days_of_week": EVERY_DAY}
    rule["start_time"] = "00:00"
    made = api.post("/admin/v1/availabilities", admin, {**rule, "end_time": "24:00"})
    assert made.status_code == 201, made.text
    today = dt.datetime.now(dt.UTC).date()
    job = api.post(
        "/admin/v1/slots/generate",
        admin,
        {"from": today.isoformat(), "to": (today + dt.timedelta(days=1)).isoformat()},
    ).json
    assert api.wait_job(admin, job["id"])["status"] == "succeeded"
    with container.engine.connect() as conn:
        slot, start = conn.execute(
            text(
                "SELECT id, start_at FROM scheduler.slot_instances WHERE stylist_id = :s"
                " AND start_at >= now() + interval '30 minutes' ORDER BY start_at LIMIT 1"
            ),
            {"s": person.json["id"]},
        ).one()
    assert start < dt.datetime.now(dt.UTC) + dt.timedelta(minutes=settings.min_notice_minutes)
    return {"tenant": tenant, "slot": str(slot), "service": service["id"], "admin": admin}


def _staff_context(settings, soon, **changes) -> WriteContext:  # type: ignore[no-untyped-def]
    body = {"slot_id": soon["slot"], "service_id": soon["service"], "customer": WALK_IN}
    return WriteContext(
        write_id=new_id(),
        principal=Principal(uuid.uuid4(), "frontdesk", soon["tenant"]),
        body=body,
        params={},
        request_id=None,
        settings=settings.with_(**changes),
    )


def test_the_notice_binds_staff_unless_the_setting_lets_them_skip_it(
    api, soon, container, settings
):
    desk = token_for(settings, "frontdesk", soon["tenant"])
    body = {"slot_id": soon["slot"], "service_id": soon["service"], "customer": WALK_IN}
    refused = api.post("/admin/v1/bookings", desk, body)
    assert refused.status_code == 409 and refused.json["type"].endswith("/slot-unavailable")
    # The setting is the worker's: the operation runs here on the same database with it set.
    with container.sessions.begin() as session, pytest.raises(SlotUnavailable):
        holds.staff_book(session, _staff_context(settings, soon, staff_skip_notice=False))
    with container.sessions.begin() as session:
        outcome = holds.staff_book(session, _staff_context(settings, soon, staff_skip_notice=True))
    assert outcome.status == 201 and outcome.body["status"] == "held"
    with container.sessions() as s:
        assert s.get(Booking, outcome.body["booking_id"]).status == "held"


def test_complete_only_after_the_start_once_with_its_event(api, salon, container, settings):
    desk = token_for(settings, "frontdesk", salon["tenant"])
    b = staff_book(api, desk, salon, slot_id(container, salon["stylists"][0], 11), confirm=True)
    url = f"/admin/v1/bookings/{b.json['booking_id']}"
    early = api.patch(url, desk, {"action": "complete"})
    assert early.status_code == 409 and early.json["type"].endswith("/booking-not-changeable")
    starts_in(container, b.json["booking_id"], -1)
    done = api.patch(url, desk, {"action": "complete"})
    assert done.status_code == 200 and done.json["status"] == "completed"
    again = api.patch(url, desk, {"action": "complete"})
    assert again.status_code == 200 and again.json["status"] == "completed"
    assert topics(container, b.json["booking_id"]) == ["booking.confirmed", "booking.completed"]
    # Final: neither a no-show nor a cancel changes it now.
    for action in ("no_show", "cancel"):
        closed = api.patch(url, desk, {"action": action})
        assert closed.status_code == 409, (action, closed.text)
    # A hold cannot be completed.
    held = staff_book(api, desk, salon, slot_id(container, salon["stylists"][1], 11)).json
    starts_in(container, held["booking_id"], -1)
    refused = api.patch(f"/admin/v1/bookings/{held['booking_id']}", desk, {"action": "complete"})
    assert refused.status_code == 409


def test_a_stylist_reaches_only_their_own_bookings(api, salon, container, settings):
    desk = token_for(settings, "frontdesk", salon["tenant"])
    mine_id, theirs_id = salon["stylists"]
    me = token_for(settings, "stylist", salon["tenant"], uuid.UUID(mine_id))
    mine = staff_book(api, desk, salon, slot_id(container, mine_id, 9), confirm=True).json
    theirs = staff_book(api, desk, salon, slot_id(container, theirs_id, 9), confirm=True).json
    for b in (mine, theirs):
        starts_in(container, b["booking_id"], -1)

    listed = api.get("/admin/v1/bookings", me).json
    assert [x["booking_id"] for x in listed["items"]] == [mine["booking_id"]]
    assert listed["total"] == 1
    assert api.get(f"/admin/v1/bookings/{mine['booking_id']}", me).status_code == 200
    assert api.get(f"/admin/v1/bookings/{theirs['booking_id']}", me).status_code == 404
    # Another stylist's booking is not found, whatever the action; their own: only these two.
    other = api.patch(f"/admin/v1/bookings/{theirs['booking_id']}", me, {"action": "no_show"})
    assert other.status_code == 404
    cancel = api.patch(f"/admin/v1/bookings/{mine['booking_id']}", me, {"action": "cancel"})
    assert cancel.status_code == 403
    done = api.patch(f"/admin/v1/bookings/{mine['booking_id']}", me, {"action": "complete"})
    assert done.status_code == 200 and done.json["status"] == "completed"
    with container.sessions() as s:
        assert s.get(Booking, uuid.UUID(theirs["booking_id"])).status == "confirmed"


# --- the day view ---------------------------------------------------------------------------

# Europe/Paris springs forward on this day: 02:00 CET becomes 03:00 CEST (a 23-hour day).
DST_DAY = dt.date(2027, 3, 28)
PARIS = ZoneInfo("Europe/Paris")


def paris(hour: int, minute: int = 0, day: dt.date = DST_DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), PARIS)


def z(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def dst_salon(api, worker, settings, tenant):  # type: ignore[no-untyped-def]
    admin = token_for(settings, "admin", tenant)
    loc = api.post("/admin/v1/locations", admin, {"name": "Paris", "timezone": "Europe/Paris"})
    loc_id = loc.json["id"]
    people = [
        api.post("/admin/v1/stylists", admin, {"name": n, "location_ids": [loc_id]}).json["id"]
        for n in ("Ana", "Ben", "Cy")
    ]
    service = api.post(
        "/admin/v1/services",
        admin,
        {"location_id": loc_id, "name": "Cut", "duration_minutes": 45, "buffer_minutes": 15},
    ).json["id"]
    every_day = {"location_id": loc_id, "rule_kind": "WEEKLY", "days_of_week": EVERY_DAY}
    rules = [
        # Across the skipped hour: 01:00-04:00 on the wall is two real hours that night.
        {**every_day, "start_time": "01:00", "end_time": "04:00"},
        {**every_day, "start_time": "09:00", "end_time": "12:00"},
        {**every_day, "start_time": "13:00", "end_time": "18:00"},
        # Ana alone is away 15:00-16:00 that day.
        {
            "location_id": loc_id,
            "stylist_id": people[0],
            "rule_kind": "EXCEPTION",
            "start_time": "15:00",
            "end_time": "16:00",
            "valid_from": DST_DAY.isoformat(),
            "valid_to": DST_DAY.isoformat(),
            "is_closed": True,
        },
    ]
    for rule in rules:
        created = api.post("/admin/v1/availabilities", admin, rule)
        assert created.status_code == 201, created.text
    day = DST_DAY.isoformat()
    job = api.post("/admin/v1/slots/generate", admin, {"from": day, "to": day}).json
    assert api.wait_job(admin, job["id"])["status"] == "succeeded"
    return {"location": loc_id, "stylists": people, "service": service, "admin": admin}


def test_the_day_view_of_a_dst_day_in_local_time_and_utc(api, dst_salon, container, tenant):
    ana, ben, cy = dst_salon["stylists"]
    shop = {"location": dst_salon["location"], "service": dst_salon["service"]}
    book(container, shop, tenant, ana, paris(9), minutes=60)
    book(container, shop, tenant, ana, paris(0, 30), minutes=30, status="completed")
    book(container, shop, tenant, ben, paris(10), minutes=60, status="held",
         expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))  # fmt: skip
    # Not shown: a lapsed hold, a cancelled booking, the evening before (local date).
    book(container, shop, tenant, ben, paris(13), minutes=60, status="held",
         expires=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))  # fmt: skip
    book(container, shop, tenant, cy, paris(9), minutes=60, status="cancelled")
    book(container, shop, tenant, cy, paris(23, 30, DST_DAY - dt.timedelta(days=1)), minutes=30)

    statements = _count_statements(container)
    resp = api.get(
        "/admin/v1/schedule",
        dst_salon["admin"],
        location_id=dst_salon["location"],
        date=DST_DAY.isoformat(),
    )
    assert resp.status_code == 200, resp.text
    # A few statements for three stylists: not one (or more) per stylist.
    assert statements() <= 6
    view = resp.json
    assert view["date"] == DST_DAY.isoformat() and view["timezone"] == "Europe/Paris"
    columns = {c["name"]: c for c in view["stylists"]}
    assert list(columns) == ["Ana", "Ben", "Cy"]

    night = {
        "start_at": z(paris(1)),
        "end_at": z(paris(4)),
        "local_start": "2027-03-28T01:00:00+01:00",
        "local_end": "2027-03-28T04:00:00+02:00",
    }
    assert night["start_at"] == "2027-03-28T00:00:00Z" and night["end_at"] == "2027-03-28T02:00:00Z"
    spans = [(9, 12), (13, 18)]
    assert columns["Ben"]["hours"] == [night, *[_span(a, b) for a, b in spans]]
    assert columns["Ben"]["breaks"] == [_span(4, 9), _span(12, 13)]
    assert columns["Ana"]["hours"] == [night, _span(9, 12), _span(13, 15), _span(16, 18)]
    assert columns["Ana"]["breaks"] == [_span(4, 9), _span(12, 13), _span(15, 16)]

    # Slots: 15 minutes each, none in the skipped hour: 8 at night, 12 + 20 by day (Ana: 16).
    ben_slots = columns["Ben"]["slots"]
    assert len(ben_slots) == 8 + 12 + 20 and len(columns["Ana"]["slots"]) == 8 + 12 + 16
    assert [s["local_start"] for s in ben_slots[3:5]] == [
        "2027-03-28T01:45:00+01:00",
        "2027-03-28T03:00:00+02:00",
    ]
    assert ben_slots[4]["start_at"] == "2027-03-28T01:00:00Z"
    assert {s["status"] for s in ben_slots} == {"open"}

    ana_bookings = columns["Ana"]["bookings"]
    assert [(b["status"], b["local_start"]) for b in ana_bookings] == [
        ("completed", "2027-03-28T00:30:00+01:00"),
        ("confirmed", "2027-03-28T09:00:00+02:00"),
    ]
    assert ana_bookings[1]["start_at"] == "2027-03-28T07:00:00Z"
    assert ana_bookings[1]["customer"] == {"name": "C"}
    assert ana_bookings[1]["service_name"] == "Cut"
    assert [b["status"] for b in columns["Ben"]["bookings"]] == ["held"]
    assert columns["Ben"]["bookings"][0]["hold_expires_at"] is not None
    assert columns["Cy"]["bookings"] == []

    one = api.get(
        "/admin/v1/schedule",
        dst_salon["admin"],
        location_id=dst_salon["location"],
        date=DST_DAY.isoformat(),
        stylist_id=ben,
    ).json
    assert [c["name"] for c in one["stylists"]] == ["Ben"]
    assert one["stylists"][0] == columns["Ben"]


def test_a_stylist_sees_only_their_own_column_and_other_brands_nothing(
    api, dst_salon, container, settings, tenant
):
    ana, ben, _ = dst_salon["stylists"]
    query = {"location_id": dst_salon["location"], "date": DST_DAY.isoformat()}
    me = token_for(settings, "stylist", tenant, uuid.UUID(ana))
    mine = api.get("/admin/v1/schedule", me, **query)
    assert mine.status_code == 200, mine.text
    assert [c["stylist_id"] for c in mine.json["stylists"]] == [ana]
    assert api.get("/admin/v1/schedule", me, **query, stylist_id=ben).status_code == 404
    desk = token_for(settings, "frontdesk", tenant)
    assert len(api.get("/admin/v1/schedule", desk, **query).json["stylists"]) == 3
    other = token_for(settings, "admin", new_tenant(container))
    assert api.get("/admin/v1/schedule", other, **query).status_code == 404
    operator = token_for(settings, "operator", tenant)
    assert api.get("/admin/v1/schedule", operator, **query).status_code == 403


def _span(start_hour: int, end_hour: int) -> dict[str, str]:
    start, end = paris(start_hour), paris(end_hour)
    return {
        "start_at": z(start),
        "end_at": z(end),
        "local_start": start.isoformat(),
        "local_end": end.isoformat(),
    }


def _count_statements(container):  # type: ignore[no-untyped-def]
    """Statements this thread sends from now on (the worker's threads share the engine)."""
    me = threading.get_ident()
    count = [0]

    def seen(*args: object) -> None:
        if threading.get_ident() == me:
            count[0] += 1

    event.listen(container.engine, "before_cursor_execute", seen)

    def stop() -> int:
        event.remove(container.engine, "before_cursor_execute", seen)
        return count[0]

    return stop
