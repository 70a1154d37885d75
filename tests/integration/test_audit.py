"""The audit trail: every kind of staff write leaves one row, in its own transaction, naming
who, what, when and the fields it changed exactly as the write changed them; customers'
writes and refusals leave none; PII never enters it; old rows go after the retention."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from scheduler_jobs.jobs import purge_old_records
from tests.conftest import token_for
from tests.integration.conftest import slot_at

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=15)
ZONE = ZoneInfo("Europe/Madrid")
CUSTOMER = {"name": "Eva Ruiz", "phone": "+34 611 22 33 44", "email": "eva.ruiz@example.com"}


def trail(api, token, **filters):  # type: ignore[no-untyped-def]
    resp = api.get("/admin/v1/audit", token, **filters)
    assert resp.status_code == 200, resp.text
    return resp.json


def only(api, token, **filters):  # type: ignore[no-untyped-def]
    (event,) = trail(api, token, **filters)["items"]
    return event


@pytest.fixture
def staff(settings, tenant):  # type: ignore[no-untyped-def]
    subs = {role: uuid.uuid4() for role in ("admin", "manager", "frontdesk")}
    return {
        role: {"sub": str(sub), "token": token_for(settings, role, tenant, sub)}
        for role, sub in subs.items()
    }


def test_every_kind_of_staff_write_is_recorded_with_what_it_changed(
    api, staff, worker, container, settings
):
    manager, admin = staff["manager"], staff["admin"]
    m = manager["token"]
    loc = api.post("/admin/v1/locations", m, {"name": "Sol", "timezone": "Europe/Madrid"})
    assert loc.status_code == 201
    created = only(api, m, object_type="location", object_id=loc.json["id"])
    assert created["action"] == "location.create" and created["before"] is None
    assert created["after"] == loc.json  # a create: every field
    assert created["actor"] == {"sub": manager["sub"], "role": "manager"}
    assert created["request_id"] and created["write_id"] == loc.headers["X-Write-Id"]

    renamed = api.patch(f"/admin/v1/locations/{loc.json['id']}", m, {"name": "Sol 2"})
    assert renamed.status_code == 200
    event = only(api, m, action="location.update")
    assert (event["before"], event["after"]) == ({"name": "Sol"}, {"name": "Sol 2"})

    people = [
        api.post("/admin/v1/stylists", m, {"name": n, "location_ids": [loc.json["id"]]}).json
        for n in ("Ines", "Leo")
    ]
    moved = api.patch(f"/admin/v1/stylists/{people[0]['id']}", m, {"active": False})
    assert moved.status_code == 200
    event = only(api, m, action="stylist.update")
    assert (event["before"], event["after"]) == ({"active": True}, {"active": False})

    service = api.post(
        "/admin/v1/services",
        m,
        {"location_id": loc.json["id"], "name": "Cut", "duration_minutes": 60, "price": "30.00"},
    ).json
    priced = api.patch(f"/admin/v1/services/{service['id']}", m, {"price": "35.50"})
    assert priced.status_code == 200
    event = only(api, m, object_type="service", action="service.update")
    assert event["object_id"] == service["id"]
    assert (event["before"], event["after"]) == ({"price": "30.00"}, {"price": "35.50"})

    rule = api.post(
        "/admin/v1/availabilities",
        m,
        {
            "location_id": loc.json["id"],
            "rule_kind": "WEEKLY",
            "days_of_week": [1, 2, 3, 4, 5, 6, 7],
            "start_time": "09:00",
            "end_time": "18:00",
        },
    ).json
    api.patch(f"/admin/v1/availabilities/{rule['id']}", m, {"end_time": "19:00"})
    event = only(api, m, action="rules.update")
    assert (event["object_type"], event["object_id"]) == ("rule", rule["id"])
    assert (event["before"], event["after"]) == ({"end_time": "18:00"}, {"end_time": "19:00"})

    job = api.post(
        "/admin/v1/slots/generate",
        m,
        {"from": DAY.isoformat(), "to": DAY.isoformat(), "location_id": loc.json["id"]},
    )
    assert job.status_code == 202
    event = only(api, m, object_type="generation_job")
    assert (event["action"], event["object_id"]) == ("slots.generate", job.json["id"])
    assert api.wait_job(m, job.json["id"])["status"] == "succeeded"

    # A customer's hold and confirm: no audit row. Staff's no-show/cancel: one each.
    me = token_for(settings, "user", None)
    start = dt.datetime.combine(DAY, dt.time(10), ZONE)
    slot = slot_at(container, people[1]["id"], start)
    held = api.post(
        "/v1/bookings",
        me,
        {"slot_id": slot, "service_id": service["id"], "customer": CUSTOMER, "notes": "shy"},
    ).json
    api.post(f"/v1/bookings/{held['id']}/confirm", me, {})
    assert trail(api, m, object_id=held["id"])["total"] == 0
    desk = staff["frontdesk"]
    cancelled = api.patch(
        f"/admin/v1/bookings/{held['id']}", desk["token"], {"action": "cancel", "reason": "ill"}
    )
    assert cancelled.status_code == 200
    event = only(api, admin["token"], object_type="booking", object_id=held["id"])
    assert event["actor"] == {"sub": desk["sub"], "role": "frontdesk"}
    assert event["action"] == "booking.admin_update"
    assert event["before"] == {"status": "confirmed", "cancelled_at": None, "cancel_reason": None}
    assert event["after"] == {
        "status": "cancelled",
        "cancelled_at": cancelled.json["cancelled_at"],
        "cancel_reason": "ill",
    }
    # A refused staff write (already cancelled, cannot be a no-show) changes nothing: no row.
    refused = api.patch(f"/admin/v1/bookings/{held['id']}", desk["token"], {"action": "no_show"})
    assert refused.status_code == 409
    assert trail(api, m, object_id=held["id"])["total"] == 1

    # Staff book a walk-in: audited as a create, its customer masked; stored sealed.
    walk_in = {"name": "Walk In", "phone": "+34 699 88 77 66", "email": "walk.in@example.com"}
    booked = api.post(
        "/admin/v1/bookings",
        desk["token"],
        {
            "slot_id": slot_at(container, people[1]["id"], start + dt.timedelta(hours=2)),
            "service_id": service["id"],
            "customer": walk_in,
            "notes": "first visit",
            "confirm": True,
        },
    )
    assert booked.status_code == 201, booked.text
    assert booked.json["customer"] == walk_in  # the answer shows staff what they typed
    event = only(api, m, action="booking.staff_create")
    assert (event["object_type"], event["object_id"]) == ("booking", booked.json["id"])
    assert event["before"] is None and event["after"]["status"] == "confirmed"
    assert event["after"]["customer"] == {
        "name": "Walk In",
        "phone": "***66",
        "email": "w***@example.com",
    }
    assert event["after"]["notes"] == "***"
    with container.engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT pii_kid, customer_phone LIKE '%699%' OR customer_email LIKE '%walk%'"
                " OR notes LIKE '%first%' AS clear FROM scheduler.bookings WHERE id = :id"
            ),
            {"id": booked.json["id"]},
        ).one()
    assert stored.pii_kid == "t1" and not stored.clear

    deleted = api.client.simulate_delete(
        f"/admin/v1/availabilities/{rule['id']}", headers=api.headers(m, str(uuid.uuid4()))
    )
    assert deleted.status_code == 204
    event = only(api, m, action="rules.delete")
    assert event["after"] is None and event["before"]["id"] == rule["id"]
    assert event["before"]["end_time"] == "19:00"

    # Filters: by actor, by time; newest first, pages stable.
    everything = trail(api, m, page_size=100)
    assert everything["total"] == 13  # 6 creates, 5 changes, a generation, a delete
    assert trail(api, m, actor=desk["sub"])["total"] == 2
    at = [e["at"] for e in everything["items"]]
    assert at == sorted(at, reverse=True)
    paged = [
        e["id"] for page in range(1, 6) for e in trail(api, m, page=page, page_size=3)["items"]
    ]
    assert paged == [e["id"] for e in everything["items"]]
    middle = everything["items"][6]["at"]
    newer = trail(api, m, **{"from": middle}, page_size=100)["items"]
    assert [e["id"] for e in newer] == [e["id"] for e in everything["items"] if e["at"] >= middle]
    older = trail(api, m, to=middle, page_size=100)["items"]
    assert len(newer) + len(older) == 13
    # No customer's PII anywhere in the trail (notes and phone/email never changed here, and a
    # create of a booking by staff would show them masked).
    with container.engine.connect() as conn:
        leaked = conn.execute(
            text(
                "SELECT count(*) FROM scheduler.audit_events WHERE before::text LIKE ANY(:v)"
                " OR after::text LIKE ANY(:v)"
            ),
            {"v": ["%611 22%", "%eva.ruiz%", "%shy%", "%699 88%", "%walk.in%", "%first visit%"]},
        ).scalar_one()
    assert leaked == 0


def test_only_admins_and_managers_read_the_trail_of_their_own_brand(api, staff, settings, tenant):
    assert api.get("/admin/v1/audit", staff["frontdesk"]["token"]).status_code == 403
    assert api.get("/admin/v1/audit", token_for(settings, "user", None)).status_code == 403
    assert api.get("/admin/v1/audit").status_code == 401
    assert api.get("/admin/v1/audit", staff["manager"]["token"], object_id="x").status_code == 422
    other = token_for(settings, "admin", uuid.uuid4())
    assert trail(api, other)["total"] == 0


def test_the_hourly_purge_drops_rows_past_the_retention(container, tenant):
    ids = [uuid.uuid4(), uuid.uuid4()]
    with container.engine.begin() as conn:
        for event_id, age in zip(ids, (400, 300), strict=True):
            conn.execute(
                text(
                    "INSERT INTO scheduler.audit_events (id, at, biz_entity_id, actor_sub,"
                    " actor_role, action, object_type) VALUES (:id, now() - make_interval(days"
                    " => :age), :biz, :sub, 'admin', 'location.update', 'location')"
                ),
                {"id": event_id, "age": age, "biz": tenant, "sub": uuid.uuid4()},
            )
    assert container.settings.audit_retention_days == 365
    assert purge_old_records(container)["audit_purged"] >= 1
    with container.engine.connect() as conn:
        left = conn.execute(
            text("SELECT id FROM scheduler.audit_events WHERE id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        assert list(left) == [ids[1]]
