"""A user's path through gunicorn: catalogue and rules, a generation job, and the slots."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.conftest import token_for


def post(client: httpx.Client, token: str, path: str, body: dict) -> httpx.Response:
    return client.post(
        path,
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )


def test_staff_define_hours_generate_and_see_the_slots(system, settings, e2e_tenant):
    token = token_for(settings, "manager", e2e_tenant)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=system.base, timeout=30) as client:
        loc = post(
            client,
            token,
            "/admin/v1/locations",
            {"name": "Manhattan", "timezone": "America/New_York"},
        )
        assert loc.status_code == 201, system.logs()
        stylist = post(
            client,
            token,
            "/admin/v1/stylists",
            {"name": "Rosa", "location_ids": [loc.json()["id"]]},
        )
        service = post(
            client,
            token,
            "/admin/v1/services",
            {
                "location_id": loc.json()["id"],
                "name": "Cut",
                "duration_minutes": 45,
                "buffer_minutes": 15,
                "price": "40.00",
            },
        )
        assert service.status_code == 201, service.text
        rule = post(
            client,
            token,
            "/admin/v1/availabilities",
            {
                "location_id": loc.json()["id"],
                "stylist_id": stylist.json()["id"],
                "rule_kind": "WEEKLY",
                "days_of_week": [7],
                "start_time": "00:00",
                "end_time": "04:00",
                "slot_granularity_minutes": 30,
            },
        )
        assert rule.status_code == 201, rule.text
        # 2026-11-01 is a Sunday and New York's fall-back day: 01:00-02:00 happens twice.
        job = post(
            client,
            token,
            "/admin/v1/slots/generate",
            {"from": "2026-11-01", "to": "2026-11-01", "location_id": loc.json()["id"]},
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.get(job.headers["Location"], headers=auth).json()
            if state["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert state["status"] == "succeeded", (state, system.logs())
        assert state["created"] == 10  # 5 real hours of 30-minute slots
        slots = client.get(
            "/admin/v1/slots",
            headers=auth,
            params={"stylist_id": stylist.json()["id"], "from": "2026-11-01", "to": "2026-11-01"},
        ).json()
        local = [s["local_start"] for s in slots["items"]]
        assert local.count("2026-11-01T01:00:00-04:00") == 1
        assert local.count("2026-11-01T01:00:00-05:00") == 1
        assert len({s["start_at"] for s in slots["items"]}) == 10


def test_salon_generate_shows_progress_until_the_job_finishes(system, settings, e2e_tenant):
    import subprocess
    import sys

    token = token_for(settings, "admin", e2e_tenant)
    with httpx.Client(base_url=system.base, timeout=30) as client:
        loc = post(
            client, token, "/admin/v1/locations", {"name": "Queens", "timezone": "America/New_York"}
        ).json()
        stylist = post(
            client, token, "/admin/v1/stylists", {"name": "Lou", "location_ids": [loc["id"]]}
        ).json()
        rule = post(
            client,
            token,
            "/admin/v1/availabilities",
            {
                "location_id": loc["id"],
                "stylist_id": stylist["id"],
                "rule_kind": "WEEKLY",
                "days_of_week": [1, 2, 3, 4, 5, 6, 7],
                "start_time": "10:00",
                "end_time": "12:00",
            },
        )
        assert rule.status_code == 201
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "salon",
            "generate",
            "--from",
            "2027-05-03",
            "--to",
            "2027-05-09",
            "--location",
            loc["id"],
            "--biz",
            str(e2e_tenant),
        ],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "generating" in done.stderr
    assert "succeeded: created 56" in done.stdout  # 7 days x 2 hours x 4 slots
