"""The rules around a booking's life that a customer could otherwise get round: the cut-off
applies to moves too, a lapsed hold is expired whatever is asked of it, a move stays at its
location, the hold limit counts only live holds, and the list reads the location's dates."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from models.tables import Booking, OutboxEvent
from tests.integration.conftest import slot_at
from tests.integration.test_bookings import (
    CUSTOMER,
    DAY,
    customer,
    expire_hold,
    hold,
    salon,
    slot_id,
)

__all__ = ["salon"]  # the fixture, shared with test_bookings


def topics(container, booking_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with container.sessions() as s:
        return list(
            s.scalars(
                select(OutboxEvent.topic)
                .where(OutboxEvent.aggregate_id == uuid.UUID(booking_id))
                .order_by(OutboxEvent.id)
            )
        )


def confirmed(api, me, salon, slot) -> dict:  # type: ignore[no-untyped-def]
    b = hold(api, me, salon, slot).json
    assert api.post(f"/v1/bookings/{b['booking_id']}/confirm", me, {}).status_code == 200
    return b


def starts_in(container, booking_id: str, hours: int) -> None:  # type: ignore[no-untyped-def]
    """Move the appointment to `hours` from now (negative: it started), off its slot."""
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler.bookings SET start_at = now() + make_interval(hours => :h),"
                " end_at = now() + make_interval(hours => :h + 1), slot_id = NULL WHERE id = :id"
            ),
            {"id": booking_id, "h": hours},
        )


@pytest.mark.parametrize("hours", [3, -5])
def test_a_customer_cannot_move_a_booking_inside_the_cut_off_but_staff_can(
    api, salon, container, settings, hours
):
    me = customer(settings)
    stylist = salon["stylists"][0]
    b = confirmed(api, me, salon, slot_id(container, stylist, 10))
    starts_in(container, b["booking_id"], hours)
    later = slot_id(container, stylist, 15)
    moved = api.post(f"/v1/bookings/{b['booking_id']}/reschedule", me, {"slot_id": later})
    assert moved.status_code == 409, moved.text
    assert moved.json["type"].endswith("/reschedule-window-closed")
    assert moved.headers["content-type"].startswith("application/problem+json")
    # Nothing changed: the booking keeps its time, and a cancel is refused as before.
    kept = api.get(f"/v1/bookings/{b['booking_id']}", me).json
    assert kept["status"] == "confirmed" and kept["slot_id"] is None
    assert api.post(f"/v1/bookings/{b['booking_id']}/cancel", me, {}).status_code == 409
    staff = api.patch(
        f"/admin/v1/bookings/{b['booking_id']}",
        salon["admin"],
        {"action": "reschedule", "new_slot_id": later},
    )
    assert staff.status_code == 200, staff.text
    assert staff.json["slot_id"] == later and staff.json["status"] == "confirmed"
    assert topics(container, b["booking_id"]) == [
        "booking.held",
        "booking.confirmed",
        "booking.rescheduled",
    ]


def test_a_lapsed_hold_reads_as_expired_before_the_sweep(api, salon, container, settings):
    me = customer(settings)
    live = hold(api, me, salon, slot_id(container, salon["stylists"][1], 9)).json
    lapsed = hold(api, me, salon, slot_id(container, salon["stylists"][1], 11)).json
    expire_hold(container, lapsed["booking_id"])
    one = api.get(f"/v1/bookings/{lapsed['booking_id']}", me).json
    assert one["status"] == "expired" and one["hold_expires_at"] is None
    held = api.get("/v1/bookings", me, status="held").json
    assert [b["booking_id"] for b in held["items"]] == [live["booking_id"]]
    expired = api.get("/v1/bookings", me, status="expired").json
    assert [b["booking_id"] for b in expired["items"]] == [lapsed["booking_id"]]
    # Reading changed nothing: the row is still held until a write or the sweep marks it.
    with container.sessions() as s:
        assert s.get(Booking, uuid.UUID(lapsed["booking_id"])).status == "held"


@pytest.mark.parametrize(
    "action", ["cancel", "reschedule to its own slot", "reschedule", "reschedule to no slot"]
)
def test_a_lapsed_hold_answers_as_an_expired_one_whatever_is_asked(
    api, salon, container, settings, action
):
    """Swept or not, the same answer; and a write that finds it lapsed marks it expired."""
    me = customer(settings)
    stylist = salon["stylists"][0]
    own = slot_id(container, stylist, 12)
    swept = hold(api, me, salon, slot_id(container, stylist, 9)).json
    lapsed = hold(api, me, salon, own).json
    for b in (swept, lapsed):
        expire_hold(container, b["booking_id"])
    with container.engine.begin() as conn:  # the sweep's marking, for the first one only
        conn.execute(
            text("UPDATE scheduler.bookings SET status = 'expired' WHERE id = :id"),
            {"id": swept["booking_id"]},
        )

    def ask(b: dict) -> object:
        url = f"/v1/bookings/{b['booking_id']}"
        if action == "cancel":
            return api.post(f"{url}/cancel", me, {})
        target = {
            "reschedule to its own slot": own,
            "reschedule to no slot": str(uuid.uuid4()),
        }.get(action) or slot_id(container, stylist, 15)
        return api.post(f"{url}/reschedule", me, {"slot_id": target})

    answers = [ask(b) for b in (swept, lapsed)]
    assert [a.status_code for a in answers] == [409, 409]  # type: ignore[attr-defined]
    assert answers[0].json["type"] == answers[1].json["type"]  # type: ignore[attr-defined]
    with container.sessions() as s:
        assert s.get(Booking, uuid.UUID(lapsed["booking_id"])).status == "expired"
        assert s.get(Booking, uuid.UUID(lapsed["booking_id"])).slot_id == uuid.UUID(own)
    assert topics(container, lapsed["booking_id"]) == ["booking.held", "booking.expired"]


def test_a_move_to_another_location_or_to_a_time_that_does_not_fit_changes_nothing(
    api, salon, container, settings, admin_token
):
    other = api.open_salon(
        admin_token, name="Lyon", timezone="Europe/Paris", stylists=("Max",), days=(DAY, DAY)
    )
    me = customer(settings)
    stylist = salon["stylists"][1]
    b = confirmed(api, me, salon, slot_id(container, stylist, 10))
    url = f"/v1/bookings/{b['booking_id']}/reschedule"
    away = api.post(url, me, {"slot_id": slot_id(container, other["stylists"][0], 10)})
    assert away.status_code == 422, away.text
    assert away.json["errors"][0]["field"] == "slot_id"
    # 17:15 + 60 minutes runs past the 18:00 close.
    late = api.post(url, me, {"slot_id": slot_id(container, stylist, 17, 15)})
    assert late.status_code == 409 and late.json["type"].endswith("/slot-unavailable")
    unknown = api.post(url, me, {"slot_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    after = api.get(f"/v1/bookings/{b['booking_id']}", me).json
    assert after == api.get(f"/v1/bookings/{b['booking_id']}", me).json
    assert (after["start_at"], after["slot_id"]) == (b["start_at"], b["slot_id"])
    assert topics(container, b["booking_id"]) == ["booking.held", "booking.confirmed"]


def test_staff_mark_a_no_show_only_after_the_start(api, salon, container, settings):
    me = customer(settings)
    b = confirmed(api, me, salon, slot_id(container, salon["stylists"][0], 16))
    url = f"/admin/v1/bookings/{b['booking_id']}"
    early = api.patch(url, salon["admin"], {"action": "no_show"})
    assert early.status_code == 409 and early.json["type"].endswith("/booking-not-changeable")
    starts_in(container, b["booking_id"], -2)
    marked = api.patch(url, salon["admin"], {"action": "no_show"})
    assert marked.status_code == 200 and marked.json["status"] == "no_show"
    assert topics(container, b["booking_id"])[-1] == "booking.no_show"


def test_the_hold_limit_counts_only_unexpired_holds(api, salon, container, settings):
    me = customer(settings)
    stylist = salon["stylists"][1]
    first = hold(api, me, salon, slot_id(container, stylist, 9)).json
    second = hold(api, me, salon, slot_id(container, stylist, 11)).json
    hold(api, me, salon, slot_id(container, stylist, 13))
    expire_hold(container, first["booking_id"])  # lapsed, not swept: no longer counted
    assert hold(api, me, salon, slot_id(container, stylist, 15)).status_code == 201
    assert api.post(f"/v1/bookings/{second['booking_id']}/confirm", me, {}).status_code == 200
    assert hold(api, me, salon, slot_id(container, stylist, 17)).status_code == 201  # confirmed
    refused = hold(api, me, salon, slot_id(container, salon["stylists"][0], 9))
    assert refused.status_code == 409 and refused.json["type"].endswith("/hold-limit-reached")


def test_one_customers_concurrent_holds_stop_at_the_limit(api, salon, container, settings):
    me = customer(settings)
    slots = [slot_id(container, s, h) for s in salon["stylists"] for h in (9, 12, 15)]
    answers: list[int] = []
    lock = threading.Lock()

    def attempt(slot: str) -> None:
        status = hold(api, me, salon, slot).status_code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=attempt, args=(s,)) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201] * 3 + [409] * 3
    assert api.get("/v1/bookings", me, status="held").json["total"] == 3


def test_the_list_filters_pages_and_refuses_bad_queries(api, salon, container, settings):
    me = customer(settings)
    stylist = salon["stylists"][0]
    made = [hold(api, me, salon, slot_id(container, stylist, h)).json for h in (14, 10, 12)]
    api.post(f"/v1/bookings/{made[1]['booking_id']}/confirm", me, {})
    hold(api, customer(settings), salon, slot_id(container, salon["stylists"][1], 10))
    by_start = sorted(made, key=lambda b: b["start_at"])
    pages = [api.get("/v1/bookings", me, page=p, page_size=1).json for p in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [3, 3, 3, 3]
    assert [b["booking_id"] for p in pages for b in p["items"]] == [
        b["booking_id"] for b in by_start
    ]
    done = api.get("/v1/bookings", me, status="confirmed").json
    assert [b["booking_id"] for b in done["items"]] == [made[1]["booking_id"]]
    day = DAY.isoformat()
    assert api.get("/v1/bookings", me, date_from=day, date_to=day).json["total"] == 3
    after = (DAY + dt.timedelta(days=1)).isoformat()
    assert api.get("/v1/bookings", me, date_from=after).json["total"] == 0
    for bad in (
        {"status": "lost"},
        {"date_from": "tomorrow"},
        {"page": "0"},
        {"page_size": "1001"},
        {"colour": "red"},
        {"date_from": after, "date_to": day},
        {"date_from": "0001-01-01"},
        {"date_to": "9999-12-31"},
    ):
        resp = api.get("/v1/bookings", me, **bad)
        assert resp.status_code == 422, bad
        assert resp.headers["content-type"].startswith("application/problem+json")
    crossed = api.get("/v1/bookings", me, date_from=after, date_to=day).json
    assert crossed["errors"][0]["field"] == "query"
    assert "date_from must not be after date_to" in crossed["errors"][0]["message"]


def test_the_list_reads_dates_in_the_locations_zone(api, container, settings, admin_token, worker):
    """10:00 in Auckland (UTC+13 in December) is the evening before in UTC: the booking is
    listed under its Auckland date, as the customer booked it."""
    day = DAY + dt.timedelta(days=1)
    place = api.open_salon(
        admin_token,
        name="Auckland",
        timezone="Pacific/Auckland",
        stylists=("Kiri",),
        days=(day, day),
    )
    start = dt.datetime.combine(day, dt.time(10), ZoneInfo("Pacific/Auckland"))
    assert start.astimezone(dt.UTC).date() == day - dt.timedelta(days=1)
    me = customer(settings)
    made = api.post(
        "/v1/bookings",
        me,
        {
            "slot_id": slot_at(container, place["stylists"][0], start),
            "service_id": place["service"],
            "customer": CUSTOMER,
        },
    )
    assert made.status_code == 201, made.text
    on = api.get("/v1/bookings", me, date_from=day.isoformat(), date_to=day.isoformat()).json
    assert [b["booking_id"] for b in on["items"]] == [made.json["booking_id"]]
    eve = (day - dt.timedelta(days=1)).isoformat()
    assert api.get("/v1/bookings", me, date_from=eve, date_to=eve).json["total"] == 0
    staff = api.get(
        "/admin/v1/bookings", admin_token, date_from=day.isoformat(), date_to=day.isoformat()
    ).json
    assert made.json["booking_id"] in [b["booking_id"] for b in staff["items"]]


@pytest.mark.parametrize(
    "change",
    [{"name": "   "}, {"phone": "-----"}, {"phone": "+1 ()"}, {"email": "ana@"}],
)
def test_a_hold_with_a_bad_customer_is_refused_and_writes_nothing(
    api, salon, container, settings, change
):
    me = customer(settings)
    resp = hold_as(api, me, salon, slot_id(container, salon["stylists"][0], 10), change)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/bookings", me).json["total"] == 0


def hold_as(api, token, salon, slot, change):  # type: ignore[no-untyped-def]
    return api.post(
        "/v1/bookings",
        token,
        {"slot_id": slot, "service_id": salon["service"], "customer": {**CUSTOMER, **change}},
    )


def test_a_hold_carries_its_id_and_a_trimmed_name(api, salon, container, settings):
    resp = hold_as(
        api,
        customer(settings),
        salon,
        slot_id(container, salon["stylists"][1], 14),
        {"name": "  Ana Lopez "},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["id"] == resp.json["booking_id"]
    assert resp.json["customer"]["name"] == "Ana Lopez"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/bookings", {"notes": "a\u0000b"}, "notes"),
        ("/v1/bookings", {"customer": {**CUSTOMER, "name": "Ana\u0000"}}, "customer.name"),
        ("/v1/bookings", {"consent": {"sms\u0000": True}}, "consent.sms\u0000"),
        ("/admin/v1/locations", {"name": "Lyon\u0000", "timezone": "Europe/Paris"}, "name"),
    ],
)
def test_a_nul_character_anywhere_in_a_body_is_a_422_that_records_nothing(
    api, salon, container, settings, path, body, field
):
    """PostgreSQL cannot store U+0000 in text or jsonb: it was a 500 from the write's record."""
    me = customer(settings) if path == "/v1/bookings" else salon["admin"]
    if path == "/v1/bookings":
        body = {
            "slot_id": slot_id(container, salon["stylists"][0], 10),
            "service_id": salon["service"],
            "customer": CUSTOMER,
            **body,
        }
    with container.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM scheduler.idempotency_keys")).scalar()
    resp = api.post(path, me, body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json["errors"] == [
        {"field": field, "message": "must not contain the NUL character (U+0000)"}
    ]
    with container.engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM scheduler.idempotency_keys")).scalar()
    assert after == before


def test_a_nul_character_in_a_query_is_a_422(api, settings):
    resp = api.get("/v1/bookings", customer(settings), date_from="2027-01-01\u0000")
    assert resp.status_code == 422, resp.text
    assert resp.json["errors"][0]["field"] == "date_from"
    assert "NUL" in resp.json["errors"][0]["message"]


def test_each_change_writes_one_event_and_repeats_or_refusals_write_none(
    api, salon, container, settings
):
    me = customer(settings)
    stylist = salon["stylists"][0]
    by_customer = confirmed(api, me, salon, slot_id(container, stylist, 9))
    url = f"/v1/bookings/{by_customer['booking_id']}"
    assert api.post(f"{url}/confirm", me, {}).status_code == 200  # a repeat: no event
    assert api.post(f"{url}/cancel", me, {"reason": "moving"}).status_code == 200
    assert api.post(f"{url}/cancel", me, {}).status_code == 200  # a repeat: no event
    assert api.post(f"{url}/confirm", me, {}).status_code == 409  # refused: no event
    assert topics(container, by_customer["booking_id"]) == [
        "booking.held",
        "booking.confirmed",
        "booking.cancelled",
    ]
    by_staff = confirmed(api, customer(settings), salon, slot_id(container, stylist, 11))
    staff = api.patch(
        f"/admin/v1/bookings/{by_staff['booking_id']}", salon["admin"], {"action": "cancel"}
    )
    assert staff.status_code == 200
    assert topics(container, by_staff["booking_id"])[-1] == "booking.cancelled"
    lapsed = hold(api, me, salon, slot_id(container, stylist, 13)).json
    expire_hold(container, lapsed["booking_id"])
    for _ in range(2):
        late = api.post(f"/v1/bookings/{lapsed['booking_id']}/confirm", me, {})
        assert late.status_code == 409 and late.json["type"].endswith("/hold-expired")
    assert topics(container, lapsed["booking_id"]) == ["booking.held", "booking.expired"]


def test_staff_marking_a_lapsed_hold_no_show_expire_it_instead(api, salon, container, settings):
    b = hold(api, customer(settings), salon, slot_id(container, salon["stylists"][0], 14)).json
    expire_hold(container, b["booking_id"])
    resp = api.patch(f"/admin/v1/bookings/{b['booking_id']}", salon["admin"], {"action": "no_show"})
    assert resp.status_code == 409 and resp.json["detail"] == "booking is expired"
    assert topics(container, b["booking_id"]) == ["booking.held", "booking.expired"]


def test_a_move_to_where_the_booking_already_is_repeats_even_inside_the_cut_off(
    api, salon, container, settings
):
    me = customer(settings)
    b = confirmed(api, me, salon, slot_id(container, salon["stylists"][1], 16))
    with container.engine.begin() as conn:  # 3 hours from now, on its slot still
        conn.execute(
            text(
                "UPDATE scheduler.bookings SET start_at = now() + interval '3 hours',"
                " end_at = now() + interval '4 hours' WHERE id = :id"
            ),
            {"id": b["booking_id"]},
        )
    same = api.post(f"/v1/bookings/{b['booking_id']}/reschedule", me, {"slot_id": b["slot_id"]})
    assert same.status_code == 200 and same.json["slot_id"] == b["slot_id"]
    assert topics(container, b["booking_id"]) == ["booking.held", "booking.confirmed"]
