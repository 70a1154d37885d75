"""Slot generation jobs with a real worker: idempotent, reconciling, never touching bookings."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from sqlalchemy import delete, func, select, text

from models.tables import SlotInstance

MONDAY = dt.date(2027, 3, 1)  # a Monday, far enough ahead of "today"


def generate(api, token: str, **body) -> dict:
    payload = {"from": MONDAY.isoformat(), "to": (MONDAY + dt.timedelta(days=13)).isoformat()}
    resp = api.post("/admin/v1/slots/generate", token, payload | body)
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/admin/v1/jobs/{resp.json['id']}"
    return api.wait_job(token, resp.json["id"])


@pytest.fixture
def salon(api, admin_token, worker):  # type: ignore[no-untyped-def]
    loc = api.post(
        "/admin/v1/locations", admin_token, {"name": "Leeds", "timezone": "Europe/London"}
    ).json
    stylist = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Ivy", "location_ids": [loc["id"]]}
    ).json
    rule = api.post(
        "/admin/v1/availabilities",
        admin_token,
        {
            "location_id": loc["id"],
            "stylist_id": stylist["id"],
            "rule_kind": "WEEKLY",
            "days_of_week": [1, 2, 3, 4, 5],
            "start_time": "09:00",
            "end_time": "17:00",
            "slot_granularity_minutes": 30,
        },
    ).json
    return {"location": loc["id"], "stylist": stylist["id"], "rule": rule["id"]}


def count_slots(container, stylist: str) -> int:
    with container.sessions() as s:
        return (
            s.scalar(select(func.count()).where(SlotInstance.stylist_id == uuid.UUID(stylist))) or 0
        )


# 10 weekdays x 8 hours x 2 slots an hour
EXPECTED = 10 * 16


def test_generation_creates_the_slots_once_and_a_rerun_creates_nothing(
    api, admin_token, salon, container
):
    first = generate(api, admin_token, location_id=salon["location"])
    assert first["status"] == "succeeded" and first["progress"] == 1.0
    assert (first["created"], first["removed"], first["conflicts"]) == (EXPECTED, 0, 0)
    assert count_slots(container, salon["stylist"]) == EXPECTED
    again = generate(api, admin_token, location_id=salon["location"])
    assert (again["created"], again["removed"], again["skipped"]) == (0, 0, EXPECTED)
    assert count_slots(container, salon["stylist"]) == EXPECTED
    listed = api.get(
        "/admin/v1/slots",
        admin_token,
        stylist_id=salon["stylist"],
        **{"from": MONDAY.isoformat(), "to": MONDAY.isoformat()},
    ).json
    assert listed["total"] == 16
    first_slot = listed["items"][0]
    assert first_slot["start_at"] == "2027-03-01T09:00:00Z"
    assert first_slot["local_start"] == "2027-03-01T09:00:00+00:00"
    starts = [i["start_at"] for i in listed["items"]]
    assert starts == sorted(starts)


def test_a_rule_change_adds_new_free_slots_and_removes_uncovered_ones(
    api, admin_token, salon, container
):
    generate(api, admin_token, location_id=salon["location"])
    changed = api.patch(
        f"/admin/v1/availabilities/{salon['rule']}",
        admin_token,
        {"start_time": "10:00", "end_time": "18:00"},
    )
    assert changed.status_code == 200, changed.text
    job = generate(api, admin_token, location_id=salon["location"])
    # 09:00-10:00 goes (2 slots a day), 17:00-18:00 comes (2 a day), the rest stays.
    assert (job["created"], job["removed"], job["skipped"]) == (20, 20, EXPECTED - 20)
    assert count_slots(container, salon["stylist"]) == EXPECTED


def test_booked_slots_are_never_removed_but_reported_as_conflicts(
    api, admin_token, salon, container, tenant
):
    generate(api, admin_token, location_id=salon["location"])
    start = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    with container.engine.begin() as conn:
        service = conn.execute(
            text(
                "INSERT INTO scheduler.services (id, location_id, name, duration_minutes)"
                " VALUES (gen_random_uuid(), :loc, 'Cut', 30) RETURNING id"
            ),
            {"loc": salon["location"]},
        ).scalar()
        booking = conn.execute(
            text(
                "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
                " service_id, customer_name, customer_phone, status, start_at, end_at)"
                " VALUES (gen_random_uuid(), :biz, :loc, :st, :svc, 'C', '+1', 'confirmed', :s, :e)"
                " RETURNING id"
            ),
            {
                "biz": tenant,
                "loc": salon["location"],
                "st": salon["stylist"],
                "svc": service,
                "s": start,
                "e": start + dt.timedelta(minutes=30),
            },
        ).scalar()
    api.patch(f"/admin/v1/availabilities/{salon['rule']}", admin_token, {"start_time": "10:00"})
    job = generate(api, admin_token, location_id=salon["location"])
    assert job["conflicts"] == 1 and job["removed"] == 19
    detail = job["conflict_details"][0]
    assert detail["booking_id"] == str(booking) and detail["start_at"] == "2027-03-01T09:00:00Z"
    with container.sessions() as s:
        kept = s.scalar(
            select(func.count()).where(
                SlotInstance.stylist_id == uuid.UUID(salon["stylist"]),
                SlotInstance.start_at == start,
            )
        )
    assert kept == 1


def test_a_dry_run_reports_the_same_numbers_and_writes_nothing(api, admin_token, salon, container):
    dry = generate(api, admin_token, location_id=salon["location"], dry_run=True)
    assert dry["status"] == "succeeded" and dry["created"] == EXPECTED
    assert count_slots(container, salon["stylist"]) == 0
    real = generate(api, admin_token, location_id=salon["location"])
    assert real["created"] == dry["created"]


def test_two_jobs_for_the_same_range_at_once_make_no_duplicates(api, admin_token, salon, container):
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(generate(api, admin_token, location_id=salon["location"]))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    assert sum(r["created"] for r in results) == EXPECTED
    assert count_slots(container, salon["stylist"]) == EXPECTED


def test_range_limits_are_enforced_with_a_clear_error(api, admin_token, salon):
    resp = api.post(
        "/admin/v1/slots/generate", admin_token, {"from": "2027-01-01", "to": "2028-06-01"}
    )
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "to"
    backwards = api.post(
        "/admin/v1/slots/generate", admin_token, {"from": "2027-01-10", "to": "2027-01-01"}
    )
    assert backwards.status_code == 422


def test_another_brands_job_is_not_found(api, admin_token, salon, settings):
    from tests.conftest import token_for

    resp = api.post(
        "/admin/v1/slots/generate", admin_token, {"from": "2027-03-01", "to": "2027-03-02"}
    )
    other = token_for(settings, "admin", uuid.uuid4())
    assert api.get(f"/admin/v1/jobs/{resp.json['id']}", other).status_code == 404


def test_the_rolling_horizon_generates_every_active_stylist_ahead(
    api, admin_token, salon, container, settings, tenant
):
    from models.tables import GenerationJob
    from salon.bootstrap import bootstrap
    from salon.generation.jobs import start_horizon_jobs

    short = bootstrap(settings.with_(horizon_days=7))
    try:
        job_ids = start_horizon_jobs(short)
    finally:
        short.close()
    with container.sessions() as s:
        ours = s.scalars(
            select(GenerationJob.id).where(
                GenerationJob.id.in_(job_ids), GenerationJob.biz_entity_id == tenant
            )
        ).all()
    assert len(ours) == 1  # one job per brand
    job = api.wait_job(admin_token, str(ours[0]))
    assert job["status"] == "succeeded" and job["created"] > 0
    today = dt.datetime.now(dt.UTC).date()
    listed = api.get(
        "/admin/v1/slots",
        admin_token,
        stylist_id=salon["stylist"],
        **{"from": today.isoformat(), "to": (today + dt.timedelta(days=7)).isoformat()},
    ).json
    # Weekdays in the next 8 days, 16 slots each (some of today's may be in the past: kept).
    assert listed["total"] >= 5 * 16


def test_the_rolling_horizon_starts_from_the_containers_clock(container, settings, salon, tenant):
    """The horizon's first day is the clock's, not the machine's: a test sets it, no waiting."""
    from models.tables import GenerationJob
    from salon.bootstrap import bootstrap
    from salon.generation.jobs import start_horizon_jobs
    from salon.infra.clock import SettableClock

    class Planned:
        """Takes the planning messages instead of the workers: 2031's slots are not wanted."""

        def __init__(self) -> None:
            self.jobs: list[uuid.UUID] = []

        def plan_generation(self, job_id: uuid.UUID) -> None:
            self.jobs.append(job_id)

    later = dt.datetime(2031, 3, 30, 23, 30, tzinfo=dt.UTC)
    short = bootstrap(settings.with_(horizon_days=7))
    short.clock = SettableClock(later)
    short.dispatch = planned = Planned()  # type: ignore[assignment]
    try:
        job_ids = start_horizon_jobs(short)
    finally:
        short.close()
    try:
        assert planned.jobs == job_ids
        with container.sessions() as s:
            job = s.scalars(
                select(GenerationJob).where(
                    GenerationJob.id.in_(job_ids), GenerationJob.biz_entity_id == tenant
                )
            ).one()
        # A day of margin before the clock's date, the horizon after it.
        assert (job.date_from, job.date_to) == (dt.date(2031, 3, 29), dt.date(2031, 4, 6))
    finally:
        with container.sessions.begin() as s:
            s.execute(delete(GenerationJob).where(GenerationJob.id.in_(job_ids)))
