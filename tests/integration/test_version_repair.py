"""A version bump lost between a commit and Redis is found by the scheduler and made up for:
what every process kept is recomputed, so a taken time stops being offered."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from models.tables import WriteRequest
from salon.bootstrap import bootstrap
from salon.public_times.day_times import SUSPECT_GRACE, DayTimes
from salon.public_times.exposures import ExposureService
from salon.public_times.offers import catalogue_key
from salon.public_times.stored_answers import StoredAnswers
from salon.public_times.version_repair import LostBumpWatch, chunk_change, receipt_key, write_change
from salon.write_path import execute
from tests.conftest import token_for
from tests.integration.conftest import slot_at

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=15)
ZONE = ZoneInfo("Europe/Lisbon")
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CUSTOMER = {"name": "Rui Costa", "phone": "+351 912 345 678", "email": "rui@example.com"}
STARTS = 33  # 09:00-18:00, 15-minute slots, a 60-minute service: 09:00..17:00


@pytest.fixture
def shop(api, admin_token, worker):  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token, name="Lisbon", timezone="Europe/Lisbon", stylists=("Ines",), days=(DAY, DAY)
    )
    assert opened["job"]["status"] == "succeeded"
    return opened


def free_starts(api, shop) -> int:  # type: ignore[no-untyped-def]
    """How many starts a new customer's exposure says are free (a new session each time)."""
    resp = api.client.simulate_get(
        "/v1/slots",
        params={
            "date": DAY.isoformat(),
            "location_id": shop["location"],
            "service_id": shop["service"],
        },
        headers={"X-Session-Id": uuid.uuid4().hex},
    )
    assert resp.status_code == 200, resp.text
    return int(resp.json["total_available"])


def ten_oclock(container, shop) -> str:  # type: ignore[no-untyped-def]
    return slot_at(container, shop["stylists"][0], dt.datetime.combine(DAY, dt.time(10), ZONE))


def fresh_watch() -> LostBumpWatch:
    """A watch with no run recorded before (a job name of its own), judging every commit."""
    return LostBumpWatch(job=f"test-{uuid.uuid4()}", settle=dt.timedelta(0))


def has_receipt(container, change: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(container.redis.exists(receipt_key(container.settings.redis_namespace, change)))


def test_every_committed_change_leaves_a_receipt_and_a_refusal_none(
    api, admin_token, shop, container, settings
):
    def hold_at_ten():  # type: ignore[no-untyped-def]
        key = str(uuid.uuid4())
        body = {
            "slot_id": ten_oclock(container, shop),
            "service_id": shop["service"],
            "customer": CUSTOMER,
        }
        resp = api.post("/v1/bookings", token_for(settings, "user", None), body, key=key)
        with container.sessions() as s:
            write_id = s.scalar(select(WriteRequest.id).where(WriteRequest.key == key))
        return resp.status_code, has_receipt(container, write_change(write_id))

    assert hold_at_ten() == (201, True)
    assert hold_at_ten() == (409, False)  # refused by the worker: nothing changed
    # The chunk that generated the shop's slots too.
    job, stylist = shop["job"]["id"], shop["stylists"][0]
    with container.engine.connect() as conn:
        chunks = conn.execute(
            text(
                "SELECT stylist_id, location_id, week_start FROM scheduler.generation_chunks"
                " WHERE job_id = :j AND created > 0"
            ),
            {"j": job},
        ).all()
    assert len(chunks) == 1 and str(chunks[0].stylist_id) == stylist
    week = chunks[0].week_start.isoformat()
    chunk = chunk_change(job, stylist, shop["location"], week)
    assert has_receipt(container, chunk)
    # A chunk whose bump was lost is found like a write.
    container.redis.delete(receipt_key(container.settings.redis_namespace, chunk))
    assert fresh_watch().run(container)["lost"] >= 1
    assert has_receipt(container, chunk)


def test_a_hold_whose_bump_was_lost_stops_being_offered_once_the_scheduler_finds_it(
    api, idle_api, shop, container, settings
):
    assert free_starts(api, shop) == STARTS  # and this process keeps the day's list
    # A hold recorded but not run yet (no worker consumes the idle namespace)...
    key = str(uuid.uuid4())
    me = token_for(settings, "user", None)
    body = {
        "slot_id": ten_oclock(container, shop),
        "service_id": shop["service"],
        "customer": CUSTOMER,
    }
    pending = idle_api.post("/v1/bookings", me, body, key=key, Prefer="respond-async")
    assert pending.status_code == 202, pending.text
    with container.sessions() as s:
        write_id = s.scalar(select(WriteRequest.id).where(WriteRequest.key == key))
    # ...then run by a worker that cannot reach Redis after its commit: no bump, no receipt.
    cut_off = bootstrap(settings.with_(redis_url=CLOSED_PORT_REDIS))
    try:
        outcome = execute.execute(cut_off, write_id)
    finally:
        cut_off.close()
    assert outcome is not None and outcome.status == 201
    assert not has_receipt(container, write_change(write_id))
    # What this process kept says nothing changed: the held time is still offered.
    assert free_starts(api, shop) == STARTS
    catalogue = container.redis.get(catalogue_key(settings.redis_namespace))

    found = fresh_watch().run(container)

    assert found["lost"] >= 1 and found["checked"] >= found["lost"]
    assert has_receipt(container, write_change(write_id))
    assert container.redis.get(catalogue_key(settings.redis_namespace)) != catalogue
    # 09:15..10:45 are blocked by the 60-minute hold at 10:00: no longer offered once the
    # process's refresh thread recomputed the list, within SUSPECT_GRACE of the bump.
    deadline = time.monotonic() + SUSPECT_GRACE.total_seconds()
    while (found_now := free_starts(api, shop)) != STARTS - 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found_now == STARTS - 7
    # Made up for once: the next run finds nothing more.
    assert fresh_watch().run(container)["lost"] == 0


def test_a_new_leader_resumes_where_the_last_run_stopped_and_reports_a_long_gap(container):
    job = f"test-{uuid.uuid4()}"

    def recorded_until(ago: dt.timedelta) -> None:
        with container.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO scheduler.scheduler_job_runs (job, instance, detail)"
                    " VALUES (:job, 'test', CAST(:detail AS jsonb))"
                ),
                {"job": job, "detail": json.dumps({"until": (now() - ago).isoformat()})},
            )

    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    catalogue = catalogue_key(container.settings.redis_namespace)
    recorded_until(dt.timedelta(minutes=2))
    resumed = LostBumpWatch(job=job)
    before = container.redis.get(catalogue)
    first = resumed.run(container)
    assert first["gap"] is False
    if first["lost"] == 0:  # (another test's lost bump would be made up for here too)
        assert container.redis.get(catalogue) == before
    before = container.redis.get(catalogue)
    # Two hours without a run: receipts may be gone, so the whole gap is made up for at once.
    recorded_until(dt.timedelta(hours=2))
    after_a_gap = LostBumpWatch(job=job).run(container)
    assert after_a_gap["gap"] is True
    assert container.redis.get(catalogue) != before


def test_after_redis_lost_its_data_the_watchs_one_bump_is_recomputed_one_list_at_a_time(
    api, admin_token, container, settings
):
    """Issue 18 (5c): Redis restarted empty, the watch finds every recent change without its
    receipt and bumps the catalogue once; a process then recomputes what it kept in its
    refresh thread, one list at a time, while requests are answered at once from the lists
    it had (for SUSPECT_GRACE at most, and no answer chosen from them outlives that)."""
    days = [DAY + dt.timedelta(days=i) for i in range(6)]
    shop = api.open_salon(
        admin_token,
        name="Porto",
        timezone="Europe/Lisbon",
        stylists=("Ana", "Rita"),
        days=(days[0], days[-1]),
    )
    assert shop["job"]["status"] == "succeeded"
    reads = StoredAnswers(container)
    location, service = uuid.UUID(shop["location"]), uuid.UUID(shop["service"])
    o, versions = reads.offer(0, location, service, None)
    assert versions is not None
    now = dt.datetime.now(dt.UTC)
    for day in days:
        reads.live.day(o, day, versions, now)
    ns = settings.redis_namespace
    for key in container.redis.scan_iter(f"{ns}:*"):  # what a restart of Redis does to us
        container.redis.delete(key)
    # The counters start again: nothing kept is trusted (computed again by the requests).
    restarted = reads.versions(o)
    assert restarted is not None and restarted.catalogue != versions.catalogue
    assert all(reads.live.day(o, day, restarted, now).current for day in days)
    catalogue = int(container.redis.get(catalogue_key(ns)))

    found = fresh_watch().run(container)

    assert found["lost"] >= 5  # every change of the run so far, this shop's among them
    assert int(container.redis.get(catalogue_key(ns))) == catalogue + 1  # one bump for all
    computed: list[tuple[str, float, float]] = []
    gate = threading.Event()
    real = reads.live._compute

    def watched(*args, **kwargs) -> DayTimes:  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("day-refresh"):
            gate.wait(10)
        started = time.monotonic()
        try:
            return real(*args, **kwargs)
        finally:
            computed.append((threading.current_thread().name, started, time.monotonic()))

    reads.live._compute = watched  # type: ignore[method-assign]
    bumped = reads.versions(o)
    assert bumped is not None and bumped.catalogue == catalogue + 1
    asked = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    served = [reads.live.day(o, day, bumped, asked) for day in days for _ in range(3)]
    answered_in = time.monotonic() - started
    assert computed == [], "a request computed a list itself"
    assert all(not s.current and s.valid_until <= asked + SUSPECT_GRACE for s in served)
    assert answered_in < 0.5, answered_in  # 18 asks, no SQL among them
    # An exposure chosen from such a list is kept no longer than the list may be served.
    exposures = ExposureService(container, reads)
    exposures.exposure(
        subject="grace",
        location_id=location,
        service_id=service,
        stylist_id=None,
        day=days[2],
        variant="balanced",
        now=asked,
    )
    key = exposures.key("grace", location, service, None, days[2], "balanced")
    assert int(container.redis.hget(key, "until")) <= (asked + SUSPECT_GRACE).timestamp()

    gate.set()
    deadline = time.monotonic() + 10
    while len(computed) < len(days) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(computed) == len(days), computed  # each kept list once
    assert all(name.startswith("day-refresh") for name, _, _ in computed)
    spans = sorted((a, b) for _, a, b in computed)
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans)), "two lists at once"
    assert all(reads.live.day(o, day, bumped, asked).current for day in days)
    assert len(computed) == len(days)
