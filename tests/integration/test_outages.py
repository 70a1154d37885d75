"""Faults: Redis or PostgreSQL unreachable answers a fast 503 (or a recorded 202), never a
hang, and nothing accepted is lost."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from falcon import testing
from sqlalchemy import select, update

from api.app import api_container, create_app, wsgi_app
from models.tables import Location, WriteRequest
from salon.bootstrap import bootstrap
from salon.write_path import resend
from tests.conftest import token_for

LOCATION = {"name": "Outage", "timezone": "Asia/Dubai"}
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def silent_db() -> Iterator[str]:
    """A PostgreSQL URL whose server accepts connections and never answers: every connect
    waits until its timeout (the worst case, as a server frozen or cut off behind a proxy)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            accepted.append(conn)  # kept open, never read or answered

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/salon"
    listener.close()
    for conn in accepted:
        conn.close()


def recorded_unsent_then_resent(container, resp: testing.Result) -> WriteRequest | None:  # type: ignore[no-untyped-def]
    """The write a 202 names: recorded and not enqueued; then, past the 2 s the re-enqueue
    job leaves a new write, re-sent by that job and run. Its row once settled (or at 10 s).

    The 2 s are the database's clock against the row's `created_at`: the row is made 2.1 s
    older instead of the test sleeping them."""
    write_id = uuid.UUID(resp.headers["Location"].rsplit("/", 1)[1])
    with container.sessions() as s:
        row = s.get(WriteRequest, write_id)
        assert row is not None and row.status == "pending" and row.enqueued_at is None
    with container.sessions.begin() as s:
        s.execute(
            update(WriteRequest)
            .where(WriteRequest.id == write_id)
            .values(created_at=WriteRequest.created_at - dt.timedelta(seconds=2.1))
        )
    assert resend.reenqueue_due(container) >= 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with container.sessions() as s:
            row = s.get(WriteRequest, write_id)
            if row is not None and row.status != "pending":
                break
        time.sleep(0.1)
    return row


@pytest.fixture
def redis_down_app(settings):  # type: ignore[no-untyped-def]
    c = bootstrap(settings.with_(redis_url=CLOSED_PORT_REDIS))
    yield testing.TestClient(create_app(c)), c
    c.close()


@pytest.fixture
def db_down_app(settings, silent_db):  # type: ignore[no-untyped-def]
    c = bootstrap(settings.with_(database_url=silent_db))
    yield testing.TestClient(create_app(c)), c
    c.close()


def test_redis_down_a_write_is_recorded_answered_202_and_completed_later(
    redis_down_app, settings, tenant, container, worker
):
    client, _ = redis_down_app
    token = token_for(settings, "admin", tenant)
    started = time.monotonic()
    resp = client.simulate_post(
        "/admin/v1/locations",
        json=LOCATION,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert time.monotonic() - started < 2.0
    assert resp.status_code == 202
    # Redis is back (the real container): the scheduler's job re-enqueues, the worker runs it.
    row = recorded_unsent_then_resent(container, resp)
    assert row is not None and row.status == "succeeded" and row.http_status == 201
    with container.sessions() as s:
        assert s.scalar(select(Location.name).where(Location.biz_entity_id == tenant)) == "Outage"


@pytest.fixture
def frozen_redis(tmp_path):  # type: ignore[no-untyped-def]
    """A Redis of our own, and a way to freeze it (SIGSTOP): connections stay open and every
    call waits for an answer that does not come, the worst case for a caller."""
    from salon.infra.embedded.services import EmbeddedServices

    servers = EmbeddedServices(tmp_path)
    servers.start_redis()
    pid = int((tmp_path / "redis" / "valkey.pid").read_text())
    yield servers.redis_url, pid
    os.kill(pid, signal.SIGCONT)
    servers.stop_redis()


def test_a_frozen_redis_costs_a_write_a_fast_202_and_loses_nothing(
    frozen_redis, settings, tenant, container, worker
):
    """The API's enqueue waits for Redis no longer than its other calls (`api_container`):
    a write is recorded, answered 202 at once, and re-sent by the scheduler's job later."""
    url, pid = frozen_redis
    c = api_container(settings.with_(redis_url=url))
    try:
        client = testing.TestClient(wsgi_app(c))
        token = token_for(settings, "admin", tenant)

        def create(name: str) -> testing.Result:
            return client.simulate_post(
                "/admin/v1/locations",
                json={**LOCATION, "name": name},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": str(uuid.uuid4()),
                    "Prefer": "respond-async",
                },
            )

        assert create("Before").status_code == 202  # connections to Redis open and warm
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        resp = create("Frozen")
        elapsed = time.monotonic() - started
        assert client.simulate_get("/v1/locations").status_code == 200
    finally:
        os.kill(pid, signal.SIGCONT)
        c.close()
    assert resp.status_code == 202, resp.text
    assert elapsed < 2.0, elapsed
    # Re-sent on the real broker, where the test's worker runs it.
    row = recorded_unsent_then_resent(container, resp)
    assert row is not None and row.status == "succeeded"


def test_a_frozen_redis_costs_a_read_one_timeout_and_the_next_reads_and_writes_none(
    frozen_redis, settings, api, admin_token, tenant, container, worker
):
    """After a Redis call timed out, the API's Redis calls fail at once for a while
    (`salon.infra.redis_breaker`): a /v1/slots ask makes several, each of which waited its own
    timeout (1.5-2 s an ask), and each write's enqueue waited too. After the cooldown one
    call tries again, and once Redis answers everything goes back to it."""
    day = dt.date.today() + dt.timedelta(days=3)
    shop = api.open_salon(
        admin_token, name="Frozen", timezone="UTC", stylists=("A",), days=(day, day)
    )
    url, pid = frozen_redis
    c = api_container(settings.with_(redis_url=url))
    client = testing.TestClient(wsgi_app(c))
    token = token_for(settings, "admin", tenant)

    def ask() -> tuple[testing.Result, float]:
        started = time.monotonic()
        resp = client.simulate_get(
            "/v1/slots",
            params={
                "date": day.isoformat(),
                "location_id": shop["location"],
                "service_id": shop["service"],
            },
            headers={"X-Session-Id": uuid.uuid4().hex},  # a new ask each time
        )
        return resp, time.monotonic() - started

    try:
        assert ask()[0].status_code == 200  # connections to Redis open and warm
        os.kill(pid, signal.SIGSTOP)
        asks = [ask() for _ in range(4)]
        started = time.monotonic()
        write = client.simulate_post(
            "/admin/v1/locations",
            json={**LOCATION, "name": "Frozen"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        )
        write_seconds = time.monotonic() - started
        assert c.redis_breaker is not None and c.redis_breaker.open
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        time.sleep(1.1)  # the cooldown: the next call is a trial, Redis answers it
        assert ask()[0].status_code == 200
        assert not c.redis_breaker.open
    finally:
        c.close()
    assert all(resp.status_code == 200 and resp.json["exposed_slots"] for resp, _ in asks)
    seconds = [round(s, 3) for _, s in asks]
    print(f"\nRedis frozen: /v1/slots asks took {seconds} s, a write {write_seconds:.3f} s")
    assert seconds[0] < 1.0, seconds  # one Redis timeout (0.5 s) and the ask's own work
    assert max(seconds[1:]) < 0.3, seconds
    assert write.status_code == 202, write.text
    assert write_seconds < 0.3, write_seconds
    row = recorded_unsent_then_resent(container, write)
    assert row is not None and row.status == "succeeded"


@pytest.fixture
def own_database(servers, run_id) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Its re-enqueue job sends every pending write it finds: only this test's."""
    from tests.conftest import migrated_database

    with migrated_database(servers.admin_database_url, f"salon_lost_{run_id}") as url:
        yield url


def test_a_write_whose_message_a_restarted_redis_lost_runs_seconds_after_redis_is_back(
    own_database, settings, tmp_path
):
    """Redis (no persistence) is restarted while a write's message waits in its queue: the
    re-enqueue job finds the new Redis without its marker and sends the write again at once,
    not REDELIVER_AFTER_SECONDS (the default 30 s here) after its first send."""
    import dramatiq

    from salon.infra.embedded.services import EmbeddedServices
    from scheduler_jobs import runner
    from scheduler_jobs.jobs import Job, reenqueue_writes
    from tests.conftest import new_tenant

    redis_server = EmbeddedServices(tmp_path)
    redis_server.start_redis()
    c = bootstrap(
        settings.with_(
            database_url=own_database,
            redis_url=redis_server.redis_url,
            redeliver_after_seconds=30,
        )
    )
    stop = threading.Event()
    scheduler = threading.Thread(
        target=runner.run,
        args=(c, stop, [Job("reenqueue_writes", 1, reenqueue_writes)], "resender"),
        daemon=True,
    )
    worker: dramatiq.Worker | None = None
    marker = resend.broker_epoch_key(c.settings.redis_namespace)
    try:
        scheduler.start()
        token = token_for(settings, "admin", new_tenant(c))
        resp = testing.TestClient(wsgi_app(c)).simulate_post(
            "/admin/v1/locations",
            json=LOCATION,
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Prefer": "respond-async",
            },
        )
        assert resp.status_code == 202, resp.text
        write_id = uuid.UUID(resp.headers["Location"].rsplit("/", 1)[1])
        deadline = time.monotonic() + 10
        # The job has seen this Redis (marked it), and the message waits in its queue.
        while not (c.redis.get(marker) or b"").startswith(b"known-since:"):
            assert time.monotonic() < deadline, c.redis.get(marker)
            time.sleep(0.05)

        redis_server.stop_redis()
        redis_server.start_redis()
        back = time.monotonic()
        worker = dramatiq.Worker(c.broker, worker_threads=2, worker_timeout=100)
        worker.start()
        status = "pending"
        while status == "pending" and time.monotonic() - back < 15:
            time.sleep(0.1)
            with c.sessions() as session:
                status = session.get(WriteRequest, write_id).status  # type: ignore[union-attr]
        took = time.monotonic() - back
        print(f"\nwrite lost with Redis done {took:.1f} s after Redis was back")
        assert status == "succeeded"
        assert took < 5.0, took
    finally:
        stop.set()
        scheduler.join(timeout=10)
        if worker is not None:
            worker.stop()
        c.close()
        redis_server.stop_redis()


def test_redis_down_reads_still_work_and_readyz_names_redis(redis_down_app):
    client, _ = redis_down_app
    assert client.simulate_get("/v1/locations").status_code == 200
    started = time.monotonic()
    ready = client.simulate_get("/readyz")
    assert time.monotonic() - started < 2.0
    assert ready.status_code == 503
    assert ready.headers["Content-Type"] == "application/problem+json"
    assert ready.json["checks"]["postgres"] == "ok"
    assert ready.json["checks"]["redis"].startswith("unavailable")
    assert ready.json["checks"]["broker"].startswith("unavailable")


def test_database_down_answers_503_within_the_connect_timeout_then_at_once(
    db_down_app, settings, tenant
):
    """The first ask waits for the connect timeout (psycopg's floor: 2 s); the asks after it
    fail at once while the breaker is open (`salon.infra.connect_breaker`)."""
    client, _ = db_down_app
    token = token_for(settings, "admin", tenant)
    started = time.monotonic()
    first = client.simulate_get("/v1/locations")
    assert first.status_code == 503
    assert time.monotonic() - started < 2.5
    for method, path, kwargs in [
        ("GET", "/v1/locations", {}),
        ("GET", "/admin/v1/locations", {"headers": {"Authorization": f"Bearer {token}"}}),
        (
            "POST",
            "/admin/v1/locations",
            {
                "json": LOCATION,
                "headers": {
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            },
        ),
    ]:
        started = time.monotonic()
        resp = client.simulate_request(method, path, **kwargs)
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, (path, resp.text)
        assert resp.json["type"].endswith("/service-unavailable")
        assert resp.headers["Retry-After"]
        assert elapsed < 0.5, (path, elapsed)


def test_database_down_a_new_slots_ask_answers_503_within_the_connect_timeout(
    settings, monkeypatch, silent_db
):
    """Chosen in front of Falcon (`api.slots_entrance`), the ask's failure is answered by Falcon's
    error handlers from the exception itself: the outage is not met twice."""
    from salon.public_times.stored_answers import StoredAnswers

    offers: list[object] = []
    real_offer = StoredAnswers.offer

    def counted_offer(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        offers.append(args)
        return real_offer(self, *args, **kwargs)

    monkeypatch.setattr(StoredAnswers, "offer", counted_offer)
    c = bootstrap(settings.with_(database_url=silent_db))
    try:
        client = testing.TestClient(wsgi_app(c))
        params = {
            "date": (dt.date.today() + dt.timedelta(days=3)).isoformat(),
            "location_id": str(uuid.uuid4()),
            "service_id": str(uuid.uuid4()),
        }
        started = time.monotonic()
        resp = client.simulate_get("/v1/slots", params=params, headers={"X-Session-Id": "c" * 32})
        elapsed = time.monotonic() - started
    finally:
        c.close()
    assert resp.status_code == 503, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json["type"].endswith("/service-unavailable")
    assert elapsed < 2.5, elapsed
    assert len(offers) == 1  # tried once, in front; Falcon answered from its failure


def test_readyz_is_200_when_everything_answers(api):
    resp = api.get("/readyz")
    assert resp.status_code == 200
    assert resp.json == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "broker": "ok"},
    }


def test_callers_over_the_rate_limit_get_429_with_retry_after(settings):
    limited = bootstrap(
        settings.with_(rate_limit_per_minute=5, redis_namespace="rl-" + uuid.uuid4().hex[:6])
    )
    try:
        client = testing.TestClient(create_app(limited))
        headers = {"X-Session-Id": "7" * 32}
        codes = [
            client.simulate_get("/v1/locations", headers=headers).status_code for _ in range(7)
        ]
        assert codes[:5] == [200] * 5
        last = client.simulate_get("/v1/locations")
        assert last.status_code == 429
        assert last.json["type"].endswith("/rate-limited")
        assert 0 < int(last.headers["Retry-After"]) <= 60
        # Probes are never limited.
        assert client.simulate_get("/healthz").status_code == 200
    finally:
        limited.close()
