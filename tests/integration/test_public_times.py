"""/v1/dates and /v1/slots against real PostgreSQL and Redis: fit, stickiness, inventory."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from falcon import testing
from sqlalchemy import text

from api.app import create_app
from salon.bootstrap import bootstrap
from salon.public_times.exposures import bump_versions
from tests.integration.conftest import book

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)
STARTS_PER_STYLIST = 33  # 09:00-18:00, 15-minute slots, 60-minute service: 09:00..17:00


@pytest.fixture
def shop(api, admin_token, worker):  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token,
        name="Bath",
        timezone="Europe/London",
        stylists=("A", "B"),
        days=(DAY, DAY + dt.timedelta(days=6)),
    )
    assert opened["job"]["status"] == "succeeded"
    a, b = opened["stylists"]
    return {"location": opened["location"], "a": a, "b": b, "service": opened["service"]}


def slots(
    api, shop, session: str | None = "0" * 32, stylist: str | None = None, day=DAY, **headers
):
    params = {
        "date": day.isoformat(),
        "location_id": shop["location"],
        "service_id": shop["service"],
    }
    if stylist:
        params["stylist_id"] = stylist
    if session:
        headers["X-Session-Id"] = session
    return api.client.simulate_get("/v1/slots", params=params, headers=headers)


def at(hour: int, minute: int = 0) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(DAY, dt.time(hour, minute), ZoneInfo("Europe/London"))


def test_dates_count_the_free_starts_per_day_in_one_call(api, shop):
    resp = api.get(
        "/v1/dates",
        None,
        **{
            "from": DAY.isoformat(),
            "days": 9,
            "location_id": shop["location"],
            "service_id": shop["service"],
        },
    )
    assert resp.status_code == 200, resp.text
    days = resp.json["dates"]
    assert [d["date"] for d in days][:2] == [DAY.isoformat(), (DAY + dt.timedelta(1)).isoformat()]
    assert all(d["has_availability"] and d["total_slots"] == STARTS_PER_STYLIST for d in days[:7])
    assert days[7] == {
        "date": (DAY + dt.timedelta(7)).isoformat(),
        "has_availability": False,
        "total_slots": 0,
    }
    assert (
        api.get(
            "/v1/dates", None, days=91, location_id=shop["location"], service_id=shop["service"]
        ).status_code
        == 422
    )


def test_a_90_day_calendar_takes_a_few_statements_not_one_per_day(api, shop, container):
    import threading

    from sqlalchemy import event

    statements: list[str] = []
    me = threading.get_ident()

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if threading.get_ident() == me:  # not the test worker's threads
            statements.append(statement)

    ask = {"location_id": shop["location"], "service_id": shop["service"], "days": 90}
    api.get("/v1/dates", None, **ask)  # the offer read and kept
    bump_versions(container, [shop["a"], shop["b"]])  # every date changed: computed in full
    event.listen(container.engine, "before_cursor_execute", seen)
    try:
        resp = api.get("/v1/dates", None, **ask)
    finally:
        event.remove(container.engine, "before_cursor_execute", seen)
    assert resp.status_code == 200 and len(resp.json["dates"]) == 90
    assert sum(d["total_slots"] for d in resp.json["dates"]) == 7 * STARTS_PER_STYLIST
    assert 1 <= len(statements) <= 3, statements


def test_an_exposure_shows_two_to_five_real_times_and_is_sticky(api, shop):
    first = slots(api, shop)
    assert first.status_code == 200, first.text
    body = first.json
    shown = body["exposed_slots"]
    assert 2 <= len(shown) <= 5
    assert body["total_available"] == STARTS_PER_STYLIST and body["has_more"] is True
    assert len({s["start_at"] for s in shown}) == len(shown)
    for s in shown:
        start = dt.datetime.fromisoformat(s["start_at"].replace("Z", "+00:00"))
        assert at(9) <= start <= at(17)
        assert s["local_start"].startswith(DAY.isoformat())
    assert slots(api, shop).json == body


def test_stickiness_holds_across_two_app_instances_sharing_redis(api, shop, settings):
    other = bootstrap(settings)
    try:
        second_app = testing.TestClient(create_app(other))
        a = slots(api, shop, session="1" * 32).json
        b = second_app.simulate_get(
            "/v1/slots",
            params={
                "date": DAY.isoformat(),
                "location_id": shop["location"],
                "service_id": shop["service"],
            },
            headers={"X-Session-Id": "1" * 32},
        ).json
        assert a == b
    finally:
        other.close()


def test_anonymous_callers_get_their_own_session(api, shop):
    one = slots(api, shop, session=None)
    two = slots(api, shop, session=None)
    assert one.headers["X-Session-Id"] != two.headers["X-Session-Id"]
    assert "salon_sid=" in one.headers["Set-Cookie"]
    again = slots(api, shop, session=one.headers["X-Session-Id"])
    assert again.json == one.json


def test_booked_and_held_times_are_never_offered(api, shop, container, tenant):
    book(container, shop, tenant, shop["a"], at(10))
    book(
        container,
        shop,
        tenant,
        shop["a"],
        at(14),
        status="held",
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
    )
    for i in range(40):
        body = slots(api, shop, session=f"{i:032x}", stylist=shop["a"]).json
        for s in body["exposed_slots"]:
            start = dt.datetime.fromisoformat(s["start_at"].replace("Z", "+00:00"))
            # A 60-minute booking at 10:00 blocks starts from 09:15 to 10:45.
            assert not (at(9, 15) <= start <= at(10, 45)), s
            assert not (at(13, 15) <= start <= at(14, 45)), s
    # 7 starts around each booking are gone.
    assert body["total_available"] == STARTS_PER_STYLIST - 14


def test_expired_holds_do_not_hide_times(api, shop, container, tenant):
    book(
        container,
        shop,
        tenant,
        shop["a"],
        at(10),
        status="held",
        expires=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    body = slots(api, shop, session="2" * 32, stylist=shop["a"]).json
    assert body["total_available"] == STARTS_PER_STYLIST


def test_a_taken_time_is_replaced_by_one_other_and_the_rest_stay(api, shop, container, tenant):
    before = slots(api, shop, session="3" * 32, stylist=shop["a"]).json["exposed_slots"]
    taken = before[0]
    start = dt.datetime.fromisoformat(taken["start_at"].replace("Z", "+00:00"))
    book(container, shop, tenant, shop["a"], start, minutes=15)
    after = slots(api, shop, session="3" * 32, stylist=shop["a"]).json["exposed_slots"]
    assert taken not in after
    kept = [s for s in before[1:] if s in after]
    # Times overlapping the new booking are taken too; every other one stays.
    still_free = [
        s
        for s in before[1:]
        if not (
            start - dt.timedelta(minutes=45)
            <= dt.datetime.fromisoformat(s["start_at"].replace("Z", "+00:00"))
            < start + dt.timedelta(minutes=15)
        )
    ]
    assert kept == still_free
    assert len(after) == len(before)


def test_a_held_time_is_replaced_and_comes_back_to_nobody_else_while_held(
    api, shop, container, tenant
):
    session = "6" * 32
    before = slots(api, shop, session=session, stylist=shop["a"]).json["exposed_slots"]
    held = before[-1]
    start = dt.datetime.fromisoformat(held["start_at"].replace("Z", "+00:00"))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    book(container, shop, tenant, shop["a"], start, minutes=15, status="held", expires=expires)
    after = slots(api, shop, session=session, stylist=shop["a"]).json
    assert held not in after["exposed_slots"]
    assert len(after["exposed_slots"]) == len(before)
    assert after["total_available"] < STARTS_PER_STYLIST
    # Another customer is not offered it either.
    other = slots(api, shop, session="7" * 32, stylist=shop["a"]).json["exposed_slots"]
    assert held["start_at"] not in {s["start_at"] for s in other}


def test_an_exposure_that_showed_nothing_shows_times_once_some_are_free_again(
    api, shop, container, tenant
):
    session = "8" * 32
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    book(container, shop, tenant, shop["a"], at(9), minutes=9 * 60, status="held", expires=expires)
    empty = slots(api, shop, session=session, stylist=shop["a"]).json
    assert empty["exposed_slots"] == [] and empty["total_available"] == 0
    with container.engine.begin() as conn:
        conn.execute(
            text("UPDATE scheduler.bookings SET status = 'cancelled' WHERE stylist_id = :st"),
            {"st": shop["a"]},
        )
    bump_versions(container, [], [(uuid.UUID(shop["a"]), at(9), at(18))])
    again = slots(api, shop, session=session, stylist=shop["a"]).json
    assert again["total_available"] == STARTS_PER_STYLIST
    assert 2 <= len(again["exposed_slots"]) <= 5
    assert again["next_available_date"] is None
    # As a new exposure would: every day part (the evening has only 17:00).
    hours = {dt.datetime.fromisoformat(s["local_start"]).hour for s in again["exposed_slots"]}
    assert min(hours) < 12 and any(12 <= h < 17 for h in hours) and 17 in hours


def test_no_times_gives_an_empty_list_and_the_next_date(api, shop, container, tenant):
    day_before = DAY - dt.timedelta(days=1)
    body = slots(api, shop, day=day_before).json
    assert body["exposed_slots"] == [] and body["total_available"] == 0
    assert body["next_available_date"] == DAY.isoformat()


@pytest.mark.parametrize("status", ["confirmed", "held"])
def test_one_booking_blocks_a_stylist_at_both_locations(
    api, admin_token, shop, container, tenant, status
):
    other = api.post(
        "/admin/v1/locations", admin_token, {"name": "Wells", "timezone": "Europe/London"}
    ).json
    api.patch(
        f"/admin/v1/stylists/{shop['a']}",
        admin_token,
        {"location_ids": [shop["location"], other["id"]]},
    )
    service = api.post(
        "/admin/v1/services",
        admin_token,
        {"location_id": other["id"], "name": "Cut", "duration_minutes": 60},
    ).json
    # Slots for the same hours at the second location (as left by older rules).
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler.slot_instances (id, location_id, stylist_id, local_date,"
                " start_at, end_at) SELECT gen_random_uuid(), :other, stylist_id, local_date,"
                " start_at + interval '1 second', end_at + interval '1 second'"
                " FROM scheduler.slot_instances WHERE stylist_id = :a AND local_date = :d"
            ),
            {"other": other["id"], "a": shop["a"], "d": DAY},
        )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10) if status == "held" else None
    book(container, shop, tenant, shop["a"], at(12), status=status, expires=expires)
    body = api.client.simulate_get(
        "/v1/slots",
        params={
            "date": DAY.isoformat(),
            "location_id": other["id"],
            "service_id": service["id"],
            "stylist_id": shop["a"],
        },
        headers={"X-Session-Id": "4" * 32},
    ).json
    starts = [
        dt.datetime.fromisoformat(s["start_at"].replace("Z", "+00:00"))
        for s in body["exposed_slots"]
    ]
    assert starts and not any(at(11) <= s < at(13) for s in starts)
    assert body["total_available"] == STARTS_PER_STYLIST - 8
    # The other location's calendar counts the same.
    calendar = api.get(
        "/v1/dates",
        None,
        **{
            "from": DAY.isoformat(),
            "days": 1,
            "location_id": other["id"],
            "service_id": service["id"],
            "stylist_id": shop["a"],
        },
    ).json
    assert calendar["dates"][0]["total_slots"] == STARTS_PER_STYLIST - 8


def test_bad_requests_are_problems(api, shop):
    assert slots(api, shop, day=dt.date(2020, 1, 1)).status_code == 422
    resp = api.client.simulate_get("/v1/slots", params={"date": "tomorrow"})
    assert resp.status_code == 422
    missing = api.client.simulate_get(
        "/v1/slots",
        params={
            "date": DAY.isoformat(),
            "location_id": shop["location"],
            "service_id": str(uuid.uuid4()),
        },
    )
    assert missing.status_code == 404
    assert slots(api, shop, **{"X-Exposure-Variant": "nope"}).status_code == 422
    assert (
        slots(api, shop, **{"X-Exposure-Variant": "uniform"}).headers["X-Exposure-Variant"]
        == "uniform"
    )


def test_the_ledger_records_each_exposure_for_support(api, admin_token, shop):
    before = dt.datetime.now(dt.UTC)
    shown = slots(api, shop, session="5" * 32, **{"X-Exposure-Variant": "compact"}).json
    subject = "session:" + "5" * 32
    page = api.get("/admin/v1/exposures", admin_token, subject=subject).json
    assert len(page["items"]) == 1 and page["next"] is None
    entry = page["items"][0]
    assert entry["subject"] == subject and entry["variant"] == "compact"
    assert entry["date"] == DAY.isoformat() and entry["location_id"] == shop["location"]
    assert int(entry["seed"]) > 0
    assert before <= dt.datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    assert int(entry["total_available"]) == shown["total_available"] == STARTS_PER_STYLIST
    # Which times, with whom, in which slot: what the customer was shown.
    times = shown["exposed_slots"]
    assert entry["shown"].split(",") == [t["start_at"] for t in times]
    assert entry["shown_stylists"].split(",") == [t["stylist_id"] for t in times]
    assert entry["shown_slots"].split(",") == [t["slot_id"] for t in times]
    # A repeat is not recorded again.
    slots(api, shop, session="5" * 32, **{"X-Exposure-Variant": "compact"})
    assert len(api.get("/admin/v1/exposures", admin_token, subject=subject).json["items"]) == 1


def test_the_ledger_finds_an_exposure_behind_many_newer_ones_and_pages(
    api, admin_token, shop, container
):
    subject = "session:" + "c" * 32
    slots(api, shop, session="c" * 32)
    slots(api, shop, session="c" * 32, day=DAY + dt.timedelta(days=6))
    # Other brands' exposures since: more than several reads of the stream take (a first
    # version read the newest 20,000 only).
    stream = f"{container.settings.redis_namespace}:exposures"
    pipe = container.redis.pipeline(transaction=False)
    for i in range(25_000):
        pipe.xadd(stream, {"biz": str(uuid.UUID(int=i + 1)), "subject": "session:x"})
    pipe.execute()
    ours = api.get("/admin/v1/exposures", admin_token, subject=subject).json
    assert [e["date"] for e in ours["items"]] == [
        (DAY + dt.timedelta(days=6)).isoformat(),
        DAY.isoformat(),
    ]
    # One at a time: `next` goes on to the older one, then nothing is left.
    first = api.get("/admin/v1/exposures", admin_token, subject=subject, limit=1).json
    assert [e["date"] for e in first["items"]] == [(DAY + dt.timedelta(days=6)).isoformat()]
    second = api.get(
        "/admin/v1/exposures", admin_token, subject=subject, limit=1, before=first["next"]
    ).json
    assert [e["date"] for e in second["items"]] == [DAY.isoformat()]
    third = api.get(
        "/admin/v1/exposures", admin_token, subject=subject, limit=1, before=second["next"]
    ).json
    assert third == {"items": [], "next": None}
    # By date, and by when it was recorded.
    by_day = api.get("/admin/v1/exposures", admin_token, subject=subject, date=DAY.isoformat())
    assert [e["date"] for e in by_day.json["items"]] == [DAY.isoformat()]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    none = api.get("/admin/v1/exposures", admin_token, subject=subject, since=later)
    assert none.json["items"] == []
    for bad in (
        {"since": "2026-01-01T00:00:00"},  # naive
        {"since": "1969-12-31T00:00:00Z"},
        {"until": "1969-12-31T00:00:00Z"},
        {"before": "0-0"},
        {"before": "99999999999999999999-0"},
        {"before": "12"},
    ):
        refused = api.get("/admin/v1/exposures", admin_token, **bad)
        assert refused.status_code == 422, (bad, refused.status_code)
        assert refused.headers["Content-Type"].startswith("application/problem+json")


def _a_night_in_new_york(api, admin_token, settings, day: str, name: str, session: str):  # type: ignore[no-untyped-def]
    """A New York location open 00:00-05:00 on `day` only (30-minute slots and service), its
    slots generated, seen through an app whose horizon reaches it: how many slots were made,
    the exposure of that day, the counts of the day before, the day and the day after, and
    the location's id."""
    long_horizon = bootstrap(settings.with_(booking_horizon_days=400))
    try:
        client = testing.TestClient(create_app(long_horizon))
        loc = api.post(
            "/admin/v1/locations", admin_token, {"name": name, "timezone": "America/New_York"}
        ).json
        stylist = api.post(
            "/admin/v1/stylists", admin_token, {"name": "Nox", "location_ids": [loc["id"]]}
        ).json
        service = api.post(
            "/admin/v1/services",
            admin_token,
            {"location_id": loc["id"], "name": "Trim", "duration_minutes": 30},
        ).json
        api.post(
            "/admin/v1/availabilities",
            admin_token,
            {
                "location_id": loc["id"],
                "stylist_id": stylist["id"],
                "rule_kind": "DATE_RANGE",
                "valid_from": day,
                "valid_to": day,
                "start_time": "00:00",
                "end_time": "05:00",
                "slot_granularity_minutes": 30,
            },
        )
        job = api.post(
            "/admin/v1/slots/generate",
            admin_token,
            {"from": day, "to": day, "location_id": loc["id"]},
        ).json
        created = api.wait_job(admin_token, job["id"])["created"]
        body = client.simulate_get(
            "/v1/slots",
            params={"date": day, "location_id": loc["id"], "service_id": service["id"]},
            headers={"X-Session-Id": session},
        ).json
        day_before = dt.date.fromisoformat(day) - dt.timedelta(days=1)
        dates = client.simulate_get(
            "/v1/dates",
            params={
                "from": day_before.isoformat(),
                "days": 3,
                "location_id": loc["id"],
                "service_id": service["id"],
            },
        ).json["dates"]
        return created, body, [d["total_slots"] for d in dates], loc["id"]
    finally:
        long_horizon.close()


def _half_hours(body) -> None:  # type: ignore[no-untyped-def]
    for s in body["exposed_slots"]:
        start = dt.datetime.fromisoformat(s["start_at"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(s["end_at"].replace("Z", "+00:00"))
        assert end - start == dt.timedelta(minutes=30)


def test_a_dst_day_offers_only_real_instants(api, admin_token, settings, worker):
    """New York, 2027-03-14: 02:00-03:00 does not exist; a 00:00-05:00 day has 4 real hours."""
    created, body, counts, _ = _a_night_in_new_york(
        api, admin_token, settings, "2027-03-14", "Night owls", "6" * 32
    )
    assert created == 8
    assert body["total_available"] == 8
    for s in body["exposed_slots"]:
        assert not s["local_start"].startswith("2027-03-14T02:")
    _half_hours(body)
    assert counts == [0, 8, 0]


def test_a_day_whose_clock_goes_back_offers_the_repeated_hour_twice(
    api, admin_token, container, settings, worker
):
    """New York, 2027-11-07: 01:00-02:00 happens twice; a 00:00-05:00 day has 6 real hours."""
    created, body, counts, loc = _a_night_in_new_york(
        api, admin_token, settings, "2027-11-07", "Late owls", "d" * 32
    )
    assert created == 12
    assert body["total_available"] == 12
    _half_hours(body)
    assert counts == [0, 12, 0]
    # Both 01:00s are real and distinct: each shown with its own offset.
    with container.sessions() as session:
        repeated = (
            session.execute(
                text(
                    "SELECT start_at FROM scheduler.slot_instances WHERE location_id = :loc"
                    " AND start_at >= '2027-11-07T05:00:00Z'"
                    " AND start_at < '2027-11-07T07:00:00Z'"
                ),
                {"loc": loc},
            )
            .scalars()
            .all()
        )
    assert len(repeated) == 4  # 01:00 and 01:30, at -04:00 and again at -05:00


def test_a_holds_fit_check_agrees_with_the_listed_free_times(api, shop, container, tenant):
    """Two readings of one rule: `fits` (what a hold checks) and `free_starts` (what is shown)."""
    from salon.public_times.exposures import ExposureService
    from salon.public_times.free_times import fits, free_starts, offer

    book(container, shop, tenant, shop["a"], at(10, 15), minutes=45)
    book(container, shop, tenant, shop["a"], at(15), minutes=90)
    now = dt.datetime.now(dt.UTC)
    window = ExposureService(container).window(now)
    with container.sessions() as s:
        o = offer(s, uuid.UUID(shop["location"]), uuid.UUID(shop["service"]), uuid.UUID(shop["a"]))
        listed = {r.start_at for r in free_starts(s, o, DAY, window)}
        every_slot = (
            s.execute(
                text(
                    "SELECT start_at FROM scheduler.slot_instances WHERE stylist_id = :a"
                    " AND local_date = :d"
                ),
                {"a": shop["a"], "d": DAY},
            )
            .scalars()
            .all()
        )
        checked = {t for t in every_slot if fits(s, o, uuid.UUID(shop["a"]), t, window)}
    assert listed == checked
    # 10:15-11:00 blocks 09:30..10:45 (6 starts); 15:00-16:30 blocks 14:15..16:15 (9).
    assert len(listed) == STARTS_PER_STYLIST - 6 - 9


def test_a_catalogue_change_shows_at_the_next_request(api, shop, admin_token):
    """Offers are snapshotted per process; a catalogue write makes every process re-read."""

    def dates_of_b() -> int:
        return api.get(
            "/v1/dates",
            None,
            **{
                "from": DAY.isoformat(),
                "days": 1,
                "location_id": shop["location"],
                "service_id": shop["service"],
                "stylist_id": shop["b"],
            },
        ).status_code

    assert dates_of_b() == 200
    assert slots(api, shop, session="6" * 32, stylist=shop["b"]).status_code == 200
    changed = api.patch(f"/admin/v1/stylists/{shop['b']}", admin_token, {"active": False})
    assert changed.status_code == 200, changed.text
    assert dates_of_b() == 404
    assert slots(api, shop, session="7" * 32, stylist=shop["b"]).status_code == 404
    # A sticky exposure showing B is not served any more either.
    assert slots(api, shop, session="6" * 32, stylist=shop["b"]).status_code == 404


def test_nothing_beyond_the_booking_horizon_is_offered_or_counted(shop, settings):
    # A 13-day horizon ends within DAY + 3 (DAY is 10 days ahead); the shop has slots to DAY + 6.
    short = bootstrap(settings.with_(booking_horizon_days=13))
    try:
        client = testing.TestClient(create_app(short))
        ask = {"location_id": shop["location"], "service_id": shop["service"]}
        dates = client.simulate_get(
            "/v1/dates", params={**ask, "from": DAY.isoformat(), "days": 7}
        ).json["dates"]
        counts = [d["total_slots"] for d in dates]
        assert counts[:3] == [STARTS_PER_STYLIST] * 3
        # DAY + 3 is cut where the horizon ends (by the time of day now): anything up to all.
        assert counts[4:] == [0, 0, 0]
        beyond = client.simulate_get(
            "/v1/slots",
            params={**ask, "date": (DAY + dt.timedelta(days=5)).isoformat()},
            headers={"X-Session-Id": "f" * 32},
        ).json
        assert beyond["exposed_slots"] == [] and beyond["total_available"] == 0
        assert beyond["next_available_date"] is None
    finally:
        short.close()


def test_a_time_coming_within_the_minimum_notice_leaves_a_sticky_exposure(shop, container):
    """An exposure of today is not served past the moment its first time can no longer be
    booked: asked again then, that time is gone and counted out."""
    from salon.public_times.exposures import ExposureService

    exposures = ExposureService(container)
    notice = dt.timedelta(minutes=container.settings.min_notice_minutes)
    ask = {
        "subject": "session:" + "a" * 32,
        "location_id": uuid.UUID(shop["location"]),
        "service_id": uuid.UUID(shop["service"]),
        "stylist_id": uuid.UUID(shop["a"]),
        "day": DAY,
        "variant": "balanced",
    }
    import orjson

    first = orjson.loads(exposures.exposure(**ask, now=at(9) - notice - dt.timedelta(minutes=1)))
    assert first["total_available"] == STARTS_PER_STYLIST
    # Two minutes later (well within the exposure's TTL) 09:00 is inside the notice.
    later = orjson.loads(exposures.exposure(**ask, now=at(9) - notice + dt.timedelta(minutes=1)))
    assert later["total_available"] == STARTS_PER_STYLIST - 1
    shown = {s["local_start"] for s in later["exposed_slots"]}
    assert at(9).isoformat() not in shown
    kept = [s for s in first["exposed_slots"] if s["local_start"] != at(9).isoformat()]
    assert all(s in later["exposed_slots"] for s in kept)  # the rest stay


def test_an_expiring_hold_frees_its_time_without_any_write(api, shop, container, tenant):
    """Free-time lists are shared between customers until the first hold in them expires."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    book(container, shop, tenant, shop["a"], at(10), status="held", expires=expires)
    before = slots(api, shop, session="8" * 32, stylist=shop["a"]).json
    assert before["total_available"] == STARTS_PER_STYLIST - 7
    wait = (expires - dt.datetime.now(dt.UTC)).total_seconds() + 0.5
    time.sleep(max(0.0, wait))
    after = slots(api, shop, session="9" * 32, stylist=shop["a"]).json
    assert after["total_available"] == STARTS_PER_STYLIST


def day_lists(container, shop):  # type: ignore[no-untyped-def]
    """A process's public reads, the shop's offer, and a reader of its current versions."""
    from salon.public_times.stored_answers import StoredAnswers

    reads = StoredAnswers(container)
    o, _ = reads.offer(0, uuid.UUID(shop["location"]), uuid.UUID(shop["service"]), None)

    def versions():  # type: ignore[no-untyped-def]
        current = reads.versions(o)
        assert current is not None
        return current

    return reads, o, versions


def test_a_day_of_free_times_is_computed_once_while_nothing_changes(shop, container, tenant):
    from salon.public_times.versions import bump_versions

    reads, o, versions = day_lists(container, shop)
    now = dt.datetime.now(dt.UTC)
    first = reads.live.day(o, DAY, versions(), now)
    assert reads.live.day(o, DAY, versions(), now) is first
    assert len(first.free.times) == STARTS_PER_STYLIST
    # A booking a week later: this day's list is still the same one (no recomputation).
    later = at(10) + dt.timedelta(days=7)
    bump_versions(container, [], [(uuid.UUID(shop["a"]), later, later + dt.timedelta(hours=1))])
    kept = reads.live.day(o, DAY, versions(), now)
    assert kept.free is first.free and kept.versions != first.versions
    # A booking on this day: computed again, and the hold's expiry bounds the new list.
    expires = now + dt.timedelta(minutes=3)
    book(container, shop, tenant, shop["a"], at(10), status="held", expires=expires)
    second = reads.live.day(o, DAY, versions(), now)
    assert second.free is not first.free
    assert abs(second.valid_until - expires) < dt.timedelta(milliseconds=1)
    assert len(second.free.candidates()) == 2 * STARTS_PER_STYLIST - 7
    # Without versions (Redis down) nothing can tell a list is current: never reused.
    assert reads.live.day(o, DAY, None, now) is not reads.live.day(o, DAY, None, now)


def test_generating_other_days_keeps_what_a_process_holds_for_this_one(
    api, admin_token, shop, container
):
    reads, o, versions = day_lists(container, shop)
    now = dt.datetime.now(dt.UTC)
    first = reads.live.day(o, DAY, versions(), now)
    far = DAY + dt.timedelta(days=21)
    job = api.post(
        "/admin/v1/slots/generate",
        admin_token,
        {"from": far.isoformat(), "to": far.isoformat(), "location_id": shop["location"]},
    ).json
    assert api.wait_job(admin_token, job["id"])["created"] == 2 * 36
    # The stylists' versions moved, but only for the generated days: this day is kept.
    kept = reads.live.day(o, DAY, versions(), now)
    assert kept.versions != first.versions and kept.free is first.free
    assert len(reads.live.day(o, far, versions(), now).free.times) == STARTS_PER_STYLIST


def dates_of(api, shop, days: int = 9) -> list[dict]:  # type: ignore[type-arg]
    """Stylist A's calendar (any stylist's would hide A's bookings behind B's free time)."""
    params = {
        "from": DAY.isoformat(),
        "days": days,
        "location_id": shop["location"],
        "service_id": shop["service"],
        "stylist_id": shop["a"],
    }
    resp = api.get("/v1/dates", None, **params)
    assert resp.status_code == 200, resp.text
    return resp.json["dates"]  # type: ignore[no-any-return]


def test_a_calendar_recomputes_only_the_days_a_booking_touched(api, shop, container, tenant):
    from sqlalchemy import event

    before = dates_of(api, shop)
    computed: list[tuple[dt.date, dt.date]] = []

    def spy(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "scheduler.free_runs" in statement:  # a free-time count
            days = parameters.get("dates") or [parameters["first"], parameters["last"]]
            computed.append((min(days), max(days)))

    event.listen(container.engine, "before_cursor_execute", spy)
    try:
        assert dates_of(api, shop) == before and computed == []  # a repeat: stored
        book(container, shop, tenant, shop["a"], at(10) + dt.timedelta(days=4))
        after = dates_of(api, shop)
    finally:
        event.remove(container.engine, "before_cursor_execute", spy)
    # Only the dates that booking can reach (two either side) were computed again...
    assert computed == [(DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=6))]
    # ... and the calendar is what a full computation gives.
    assert after[4]["total_slots"] == before[4]["total_slots"] - 7
    assert after[:4] == before[:4] and after[5:] == before[5:]
    other_days = {"from": DAY.isoformat(), "days": 8}  # another key: computed in full
    full = api.get(
        "/v1/dates",
        None,
        location_id=shop["location"],
        service_id=shop["service"],
        stylist_id=shop["a"],
        **other_days,
    ).json["dates"]
    assert full == after[:8]


def test_a_calendar_shows_a_time_again_when_its_hold_expires(api, shop, container, tenant):
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    when = at(10) + dt.timedelta(days=1)
    book(container, shop, tenant, shop["a"], when, status="held", expires=expires)
    assert dates_of(api, shop)[1]["total_slots"] == STARTS_PER_STYLIST - 7
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds() + 0.5))
    assert dates_of(api, shop)[1]["total_slots"] == STARTS_PER_STYLIST


def test_writes_still_bump_versions_after_redis_lost_its_scripts(container, shop):
    """After a Redis restart the bump script is gone: the write path loads it again."""
    from salon.public_times.versions import changes_key, version_key

    ns = container.settings.redis_namespace
    stylist = uuid.UUID(shop["a"])
    before = int(container.redis.get(version_key(ns, stylist)) or 0)
    container.redis.script_flush()  # what a restart does (other clients reload theirs too)
    bump_versions(container, [], [(stylist, at(10), at(11))])
    assert int(container.redis.get(version_key(ns, stylist))) == before + 1
    assert container.redis.zscore(changes_key(ns, stylist), DAY.isoformat()) == before + 1


def test_what_a_process_kept_is_not_trusted_after_redis_lost_its_data(shop, container):
    """Counters start again after a Redis restart; kept day lists must not match by chance."""
    from salon.public_times.stored_answers import StoredAnswers

    reads = StoredAnswers(container)
    o, versions = reads.offer(0, uuid.UUID(shop["location"]), uuid.UUID(shop["service"]), None)
    assert versions is not None and versions.catalogue != 0
    now = dt.datetime.now(dt.UTC)
    kept = reads.live.day(o, DAY, versions, now)
    ns = container.settings.redis_namespace
    for key in container.redis.scan_iter(f"{ns}:*"):  # what a restart of Redis does to us
        container.redis.delete(key)
    after = reads.versions(o)
    assert after is not None and after.catalogue != versions.catalogue
    assert reads.live.day(o, DAY, after, now).free is not kept.free


def test_an_offers_versions_are_read_from_redis_and_a_bump_is_seen_at_once(
    shop, container, monkeypatch
):
    from salon.public_times.stored_answers import StoredAnswers
    from salon.public_times.versions import bump_versions

    reads = StoredAnswers(container)
    o, _ = reads.offer(0, uuid.UUID(shop["location"]), uuid.UUID(shop["service"]), None)
    mgets: list[object] = []
    real_mget = reads.redis.mget
    monkeypatch.setattr(reads.redis, "mget", lambda *a, **k: mgets.append(a) or real_mget(*a, **k))
    before = reads.versions(o)
    assert before is not None and reads.versions(o) == before and len(mgets) == 2
    later = at(10) + dt.timedelta(days=7)
    bump_versions(container, [], [(uuid.UUID(shop["a"]), later, later + dt.timedelta(hours=1))])
    bumped = reads.versions(o)
    assert bumped is not None and len(mgets) == 3
    assert dict(bumped.stylists)[shop["a"]] == dict(before.stylists)[shop["a"]] + 1


def test_a_day_built_from_its_rows_is_the_day_built_from_candidates(shop, container, tenant):
    """A process builds its day lists straight from the free-start rows (no `Candidate`s):
    the same list as from candidates, keys and all (stored exposures refer to them)."""
    from models.exposure import Candidate, FreeDay
    from salon.public_times.day_times import candidate_rows, whole_days
    from salon.public_times.free_times import free_starts
    from salon.public_times.stored_answers import StoredAnswers

    book(container, shop, tenant, shop["a"], at(11))
    reads = StoredAnswers(container)
    o, _ = reads.offer(0, uuid.UUID(shop["location"]), uuid.UUID(shop["service"]), None)
    with container.sessions() as session:
        rows = free_starts(session, o, DAY, whole_days(DAY))
    assert len(rows) == 2 * STARTS_PER_STYLIST - 7
    candidates = [
        Candidate(
            key=f"{r.stylist_id}@{r.start_at:%Y%m%dT%H%M%SZ}",
            stylist_id=r.stylist_id,
            slot_id=r.slot_id,
            start_at=r.start_at,
            end_at=r.end_at,
            local_start=r.start_at.astimezone(o.zone),
            gap_before=r.start_at - r.run_start,
            gap_after=r.run_end - r.end_at,
        )
        for r in rows
    ]
    built = FreeDay.of_rows(candidate_rows(o, rows), o.shortest)
    assert built == FreeDay.of(candidates, o.shortest)
    assert built.candidates() == sorted(candidates, key=lambda c: (c.start_at, c.stylist_id))


def test_today_is_the_locations_date_not_utcs(api, admin_token, container, worker):
    """Kiritimati is UTC+14: at 11:00 UTC its date is already tomorrow's."""
    import orjson

    from salon.errors import InvalidInput
    from salon.public_times.calendars import Calendars
    from salon.public_times.exposures import ExposureService

    day = DAY + dt.timedelta(days=20)
    opened = api.open_salon(
        admin_token,
        name="Line Islands",
        timezone="Pacific/Kiritimati",
        stylists=("K",),
        days=(day - dt.timedelta(days=1), day + dt.timedelta(days=1)),
    )
    now = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(11), dt.UTC)  # day, 01:00 there
    ask = {
        "subject": "session:" + "e" * 32,
        "location_id": uuid.UUID(opened["location"]),
        "service_id": uuid.UUID(opened["service"]),
        "stylist_id": None,
        "variant": "balanced",
    }
    exposures = ExposureService(container)
    with pytest.raises(InvalidInput, match="past"):
        exposures.exposure(**ask, day=day - dt.timedelta(days=1), now=now)
    shown = orjson.loads(exposures.exposure(**ask, day=day, now=now))
    assert shown["date"] == day.isoformat()
    assert shown["total_available"] == STARTS_PER_STYLIST
    calendar = orjson.loads(
        Calendars(container).calendar(
            location_id=ask["location_id"],
            service_id=ask["service_id"],
            stylist_id=None,
            first=None,
            days=2,
            now=now,
        )
    )
    assert [d["date"] for d in calendar["dates"]] == [
        day.isoformat(),
        (day + dt.timedelta(days=1)).isoformat(),
    ]
