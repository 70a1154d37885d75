"""A customer's app through gunicorn: dates, then a sticky exposure kept by cookie."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx

from tests.conftest import token_for


def test_an_anonymous_customer_sees_dates_and_a_sticky_exposure(system, settings, e2e_tenant):
    token = token_for(settings, "admin", e2e_tenant)
    auth = {"Authorization": f"Bearer {token}"}
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)

    def post(client: httpx.Client, path: str, body: dict) -> dict:
        resp = client.post(path, json=body, headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
        assert resp.status_code in (201, 202), resp.text
        return resp.json()

    with httpx.Client(base_url=system.base, timeout=30) as staff:
        loc = post(staff, "/admin/v1/locations", {"name": "Dublin", "timezone": "Europe/Dublin"})
        post(staff, "/admin/v1/stylists", {"name": "Aoife", "location_ids": [loc["id"]]})
        service = post(
            staff,
            "/admin/v1/services",
            {"location_id": loc["id"], "name": "Cut", "duration_minutes": 45},
        )
        post(
            staff,
            "/admin/v1/availabilities",
            {
                "location_id": loc["id"],
                "rule_kind": "WEEKLY",
                "days_of_week": [1, 2, 3, 4, 5, 6, 7],
                "start_time": "10:00",
                "end_time": "18:00",
            },
        )
        job = post(
            staff,
            "/admin/v1/slots/generate",
            {"from": day.isoformat(), "to": day.isoformat(), "location_id": loc["id"]},
        )
        for _ in range(300):
            if (
                staff.get(f"/admin/v1/jobs/{job['id']}", headers=auth).json()["status"]
                == "succeeded"
            ):
                break
            time.sleep(0.1)

    params = {"location_id": loc["id"], "service_id": service["id"]}
    with httpx.Client(base_url=system.base, timeout=30) as app:  # keeps cookies, like a browser
        dates = app.get("/v1/dates", params={**params, "from": day.isoformat(), "days": 2}).json()
        assert dates["dates"][0]["total_slots"] == 30  # 10:00..17:15 every 15 minutes
        first = app.get("/v1/slots", params={**params, "date": day.isoformat()})
        assert first.status_code == 200, first.text
        assert app.cookies.get("salon_sid")
        again = app.get("/v1/slots", params={**params, "date": day.isoformat()})
        assert again.json() == first.json()
        assert 2 <= len(first.json()["exposed_slots"]) <= 5
