"""The system as processes: a client creates data through the queue and reads it back; a
killed worker or a stopped Redis delays writes but loses none."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import token_for


@pytest.fixture(scope="session")
def client(system):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=system.base, timeout=30) as c:
        yield c


@pytest.fixture
def admin(settings, e2e_tenant) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {token_for(settings, 'admin', e2e_tenant)}"}


def create(
    client: httpx.Client, headers: dict[str, str], name: str, **extra: str
) -> httpx.Response:
    return client.post(
        "/admin/v1/locations",
        json={"name": name, "timezone": "America/New_York"},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4()), **extra},
    )


def wait_request(client: httpx.Client, headers: dict[str, str], url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body.get("status") != "pending":
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} still pending after {timeout}s: {body}")


def names(client: httpx.Client, headers: dict[str, str]) -> list[str]:
    items = client.get("/admin/v1/locations", headers=headers, params={"page_size": 1000})
    return [i["name"] for i in items.json()["items"]]


def test_a_location_created_through_the_queue_reads_back(client, admin, system):
    resp = create(client, admin, "Queens")
    assert resp.status_code == 201, system.logs()
    assert resp.headers["x-request-id"]
    back = client.get(resp.headers["Location"], headers=admin)
    assert back.status_code == 200 and back.json()["name"] == "Queens"
    assert client.get("/openapi.yaml").status_code == 200
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    # Metrics of both gunicorn workers, summed: the POST above is counted.
    metrics = client.get("/metrics").text
    assert 'route="/admin/v1/locations",status="201"' in metrics


def test_with_the_worker_killed_writes_answer_202_and_complete_when_it_is_back(
    client, admin, system
):
    system.worker.kill()
    resp = create(client, admin, "Harlem", Prefer="wait=1")
    assert resp.status_code == 202
    url = resp.headers["Location"]
    assert client.get(url, headers=admin).json()["status"] == "pending"
    system.worker.start()
    done = wait_request(client, admin, url, timeout=30)
    assert done["status"] == "succeeded" and done["http_status"] == 201
    assert names(client, admin).count("Harlem") == 1


def test_with_redis_stopped_writes_are_kept_and_complete_after_it_returns(client, admin, system):
    system.redis.stop_redis()
    try:
        started = time.monotonic()
        resp = create(client, admin, "Flatbush")
        assert time.monotonic() - started < 2.5
        # Recorded in PostgreSQL, not enqueued: 202 and the scheduler enqueues it later.
        assert resp.status_code == 202, resp.text
        url = resp.headers["Location"]
    finally:
        system.redis.start_redis()
    done = wait_request(client, admin, url, timeout=40)
    assert done["status"] == "succeeded", system.logs()
    assert names(client, admin).count("Flatbush") == 1
    # And the system is whole again: a fresh write goes straight through.
    assert create(client, admin, "Bushwick").status_code == 201, system.logs()
