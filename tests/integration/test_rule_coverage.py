"""Time the rules no longer cover is never sold, whatever frees it; one stylist is never at
two locations at once, even when staff write at the same moment (real worker, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.conftest import token_for
from tests.integration.conftest import slot_at

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=12)
NEXT = DAY + dt.timedelta(days=1)
ZONE = ZoneInfo("Europe/Paris")
CUSTOMER = {"name": "Ana Lopez", "phone": "+33 6 12 34 56 78"}
# 09:00-18:00 with 15-minute slots, a 60-minute cut: starts 09:00 to 17:00.
STARTS = 33


@pytest.fixture
def shop(api, admin_token, worker):  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token, name="Lyon", timezone="Europe/Paris", stylists=("Ines",), days=(DAY, NEXT)
    )
    rules = api.get("/admin/v1/availabilities", admin_token, location_id=opened["location"]).json
    return {
        "location": opened["location"],
        "stylist": opened["stylists"][0],
        "service": opened["service"],
        "rule": rules["items"][0]["id"],
        "admin": admin_token,
    }


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), ZONE)


def free_starts(api, shop, day: dt.date = DAY) -> int:
    """How many starts `/v1/dates` counts on the day."""
    resp = api.get(
        "/v1/dates",
        None,
        **{
            "from": day.isoformat(),
            "days": 1,
            "location_id": shop["location"],
            "service_id": shop["service"],
        },
    )
    assert resp.status_code == 200, resp.text
    return int(resp.json["dates"][0]["total_slots"])


def offered(api, shop, day: dt.date = DAY) -> list[str]:
    resp = api.client.simulate_get(
        "/v1/slots",
        params={
            "date": day.isoformat(),
            "location_id": shop["location"],
            "service_id": shop["service"],
            "stylist_id": shop["stylist"],
        },
        headers={"X-Session-Id": uuid.uuid4().hex},
    )
    assert resp.status_code == 200, resp.text
    return [t["start_at"] for t in resp.json["exposed_slots"]]


def hold(api, settings, shop, slot: str, token: str | None = None):  # type: ignore[no-untyped-def]
    return api.post(
        "/v1/bookings",
        token or token_for(settings, "user", None),
        {"slot_id": slot, "service_id": shop["service"], "customer": CUSTOMER},
    )


def slot_states(container, stylist: str, day: dt.date) -> dict[str, int]:
    with container.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM scheduler.slot_instances"
                " WHERE stylist_id = :s AND local_date = :d GROUP BY status"
            ),
            {"s": stylist, "d": day},
        ).all()
    return {status: n for status, n in rows}


def close_day(api, shop, day: dt.date = DAY) -> str:
    resp = api.post(
        "/admin/v1/availabilities",
        shop["admin"],
        {
            "location_id": shop["location"],
            "rule_kind": "EXCEPTION",
            "valid_from": day.isoformat(),
            "valid_to": day.isoformat(),
            "start_time": "00:00",
            "end_time": "24:00",
            "is_closed": True,
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json["id"])


def generate(api, shop) -> dict:  # type: ignore[type-arg]
    resp = api.post(
        "/admin/v1/slots/generate",
        shop["admin"],
        {"from": DAY.isoformat(), "to": NEXT.isoformat(), "location_id": shop["location"]},
    )
    assert resp.status_code == 202, resp.text
    return api.wait_job(shop["admin"], resp.json["id"])


def free_by(how: str, api, settings, container, shop, booking: str, me: str) -> None:
    """Make the booking stop holding its time, the way `how` says."""
    if how == "customer cancel":
        resp = api.post(f"/v1/bookings/{booking}/cancel", me, {"reason": "sick"})
    elif how == "staff cancel":
        resp = api.patch(f"/admin/v1/bookings/{booking}", shop["admin"], {"action": "cancel"})
    elif how == "reschedule away":
        away = slot_at(container, shop["stylist"], at(NEXT, 10))
        resp = api.post(f"/v1/bookings/{booking}/reschedule", me, {"slot_id": away})
    else:  # a hold that lapses: seen lazily by the next hold, or swept
        with container.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE scheduler.bookings SET hold_expires_at = now() - interval '1s'"
                    " WHERE id = :id"
                ),
                {"id": booking},
            )
        if how == "hold swept":
            from salon.bookings.holds import sweep_lapsed_holds

            sweep_lapsed_holds(container)
        return
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "how", ["customer cancel", "staff cancel", "reschedule away", "hold lapsed", "hold swept"]
)
def test_a_closed_days_booked_time_is_never_sold_again_once_freed(
    api, settings, container, shop, how
):
    me = token_for(settings, "user", None)
    eleven = slot_at(container, shop["stylist"], at(DAY, 11))
    booked = hold(api, settings, shop, eleven, token=me)
    assert booked.status_code == 201, booked.text
    booking = booked.json["booking_id"]
    if how not in ("hold lapsed", "hold swept"):
        assert api.post(f"/v1/bookings/{booking}/confirm", me, {}).status_code == 200
    close_day(api, shop)
    job = generate(api, shop)
    # Staff see the conflict (the 60 minutes' four slots); the kept time is blocked, not open.
    assert job["conflicts"] == 4, job
    assert {(c["booking_id"], c["reason"]) for c in job["conflict_details"]} == {
        (booking, "booked")
    }
    assert slot_states(container, shop["stylist"], DAY) == {"blocked": 4}

    free_by(how, api, settings, container, shop, booking, me)

    assert free_starts(api, shop) == 0
    assert offered(api, shop) == []
    again = hold(api, settings, shop, eleven)
    assert again.status_code == 409, again.text
    # Regenerating repairs: the freed, uncovered slot goes; no conflict is left.
    job = generate(api, shop)
    assert job["conflicts"] == 0 and slot_states(container, shop["stylist"], DAY) == {}


def test_a_closure_blocks_the_days_slots_at_once_and_reopening_restores_them(
    api, settings, container, shop
):
    assert free_starts(api, shop) == STARTS
    closure = close_day(api, shop)
    # No regeneration: the rule change itself blocked every slot of the day.
    assert free_starts(api, shop) == 0 and offered(api, shop) == []
    assert slot_states(container, shop["stylist"], DAY) == {"blocked": 36}
    refused = hold(api, settings, shop, slot_at(container, shop["stylist"], at(DAY, 10)))
    assert refused.status_code == 409, refused.text
    assert free_starts(api, shop, NEXT) == STARTS  # the next day is untouched
    gone = api.client.simulate_delete(
        f"/admin/v1/availabilities/{closure}",
        headers=api.headers(shop["admin"], str(uuid.uuid4())),
    )
    assert gone.status_code == 204, gone.text
    assert free_starts(api, shop) == STARTS
    assert slot_states(container, shop["stylist"], DAY) == {"open": 36}


def test_shorter_hours_and_a_deleted_rule_block_what_they_stop_covering(
    api, settings, container, shop
):
    rule = f"/admin/v1/availabilities/{shop['rule']}"
    shorter = api.patch(rule, shop["admin"], {"end_time": "12:00"})
    assert shorter.status_code == 200, shorter.text
    # 09:00-12:00: a 60-minute cut starts 09:00 to 11:00.
    assert free_starts(api, shop) == 9
    late = hold(api, settings, shop, slot_at(container, shop["stylist"], at(DAY, 14)))
    assert late.status_code == 409, late.text
    assert slot_states(container, shop["stylist"], DAY) == {"open": 12, "blocked": 24}
    assert api.patch(rule, shop["admin"], {"end_time": "18:00"}).status_code == 200
    assert free_starts(api, shop) == STARTS
    deleted = api.client.simulate_delete(
        rule, headers=api.headers(shop["admin"], str(uuid.uuid4()))
    )
    assert deleted.status_code == 204, deleted.text
    assert free_starts(api, shop) == 0 and free_starts(api, shop, NEXT) == 0
    assert slot_states(container, shop["stylist"], NEXT) == {"blocked": 36}


def test_a_stylist_who_leaves_the_location_or_is_deactivated_has_nothing_open_there(
    api, settings, container, shop
):
    stylist = f"/admin/v1/stylists/{shop['stylist']}"
    other = api.post(
        "/admin/v1/locations", shop["admin"], {"name": "Annecy", "timezone": "Europe/Paris"}
    ).json["id"]
    moved = api.patch(stylist, shop["admin"], {"location_ids": [other]})
    assert moved.status_code == 200, moved.text
    assert slot_states(container, shop["stylist"], DAY) == {"blocked": 36}
    assert free_starts(api, shop) == 0
    back = api.patch(stylist, shop["admin"], {"location_ids": [shop["location"], other]})
    assert back.status_code == 200, back.text
    assert slot_states(container, shop["stylist"], DAY) == {"open": 36}
    assert free_starts(api, shop) == STARTS
    assert api.patch(stylist, shop["admin"], {"active": False}).status_code == 200
    assert slot_states(container, shop["stylist"], DAY) == {"blocked": 36}
    assert free_starts(api, shop) == 0
    assert api.patch(stylist, shop["admin"], {"active": True}).status_code == 200
    assert free_starts(api, shop) == STARTS


# --- one stylist, one place at a time --------------------------------------------------------


def _two_locations(api, admin_token) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    locs = [
        api.post(
            "/admin/v1/locations", admin_token, {"name": name, "timezone": "Europe/Paris"}
        ).json["id"]
        for name in ("Nice", "Cannes")
    ]
    stylist = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Remy", "location_ids": locs}
    ).json["id"]
    return locs[0], locs[1], stylist


def _day_rule(location: str, stylist: str | None, day: dt.date) -> dict[str, object]:
    return {
        "location_id": location,
        "stylist_id": stylist,
        "rule_kind": "DATE_RANGE",
        "valid_from": day.isoformat(),
        "valid_to": day.isoformat(),
        "start_time": "09:00",
        "end_time": "17:00",
    }


def test_two_rules_written_at_once_never_put_a_stylist_at_two_locations(api, admin_token, worker):
    nice, cannes, stylist = _two_locations(api, admin_token)

    def write(location: str, day: dt.date, barrier: threading.Barrier, out: list[int]) -> None:
        barrier.wait()
        resp = api.post("/admin/v1/availabilities", admin_token, _day_rule(location, stylist, day))
        out.append(resp.status_code)

    for attempt in range(6):
        day = DAY + dt.timedelta(days=attempt)
        barrier = threading.Barrier(2)
        answers: list[int] = []
        threads = [
            threading.Thread(target=write, args=(loc, day, barrier, answers))
            for loc in (nice, cannes)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [201, 409], (attempt, answers)


def test_a_stylist_given_a_location_whose_hours_overlap_is_refused(api, admin_token, worker):
    nice, cannes, _ = _two_locations(api, admin_token)
    for loc in (nice, cannes):  # location-wide: every stylist there works these hours
        resp = api.post("/admin/v1/availabilities", admin_token, _day_rule(loc, None, DAY))
        assert resp.status_code == 201 or loc == cannes, resp.text
    # The second location-wide rule already clashed for Remy, who works at both.
    created = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Lou", "location_ids": [nice]}
    ).json["id"]
    other = api.post("/admin/v1/locations", admin_token, {"name": "Menton", "timezone": "UTC"})
    menton = other.json["id"]
    assert (
        api.post("/admin/v1/availabilities", admin_token, _day_rule(menton, None, DAY)).status_code
        == 201
    )
    patched = api.patch(
        f"/admin/v1/stylists/{created}", admin_token, {"location_ids": [nice, menton]}
    )
    assert patched.status_code == 409, patched.text
    assert patched.json["clashing_rule_id"]
    after = api.get(f"/admin/v1/stylists/{created}", admin_token).json
    assert after["location_ids"] == [nice]
    both = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Zia", "location_ids": [nice, menton]}
    )
    assert both.status_code == 409, both.text


def test_generation_reports_a_clash_instead_of_silently_creating_nothing(
    api, admin_token, worker, container
):
    nice, cannes, stylist = _two_locations(api, admin_token)
    assert (
        api.post("/admin/v1/availabilities", admin_token, _day_rule(nice, stylist, DAY)).status_code
        == 201
    )
    # Rules written before the check existed (straight into the table): the same hours at both.
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler.availability_rules (id, location_id, stylist_id,"
                " rule_kind, start_time, end_time, valid_from, valid_to)"
                " VALUES (gen_random_uuid(), :loc, :st, 'DATE_RANGE', '09:00', '17:00', :d, :d)"
            ),
            {"loc": cannes, "st": stylist, "d": DAY},
        )
    for loc, expected in ((nice, 0), (cannes, 32)):
        resp = api.post(
            "/admin/v1/slots/generate",
            admin_token,
            {"from": DAY.isoformat(), "to": DAY.isoformat(), "location_id": loc},
        )
        job = api.wait_job(admin_token, resp.json["id"])
        assert job["conflicts"] == expected, job
    clash = job["conflict_details"][0]
    assert clash["reason"] == "clash" and clash["location_id"] == nice
    assert job["created"] == 0
