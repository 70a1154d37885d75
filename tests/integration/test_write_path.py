"""The write path end to end in one process: API → PostgreSQL record → Redis → real worker."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from models.tables import Location, WriteRequest
from salon.write_path import execute, model, resend, submit
from tests.conftest import token_for

LOCATION = {"name": "Camden", "timezone": "Europe/London", "address": "1 High St"}


def wait_done(api, token: str, url: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(url, token).json
        if body["status"] != "pending":
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} still pending after {timeout}s")


def test_a_write_answers_201_with_location_and_is_readable(api, admin_token, worker):
    resp = api.post("/admin/v1/locations", admin_token, LOCATION)
    assert resp.status_code == 201, resp.text
    assert resp.json["name"] == "Camden" and resp.json["timezone"] == "Europe/London"
    assert resp.headers["Location"] == f"/admin/v1/locations/{resp.json['id']}"
    again = api.get(resp.headers["Location"], admin_token)
    assert again.status_code == 200 and again.json == resp.json


def test_replaying_a_key_returns_the_stored_response_and_writes_once(
    api, admin_token, container, tenant, worker
):
    key = str(uuid.uuid4())
    first = api.post("/admin/v1/locations", admin_token, LOCATION, key=key)
    second = api.post("/admin/v1/locations", admin_token, LOCATION, key=key)
    assert first.status_code == second.status_code == 201
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    with container.sessions() as s:
        assert s.scalar(select(func.count()).where(Location.biz_entity_id == tenant)) == 1


def test_same_key_with_another_body_is_422_and_changes_nothing(
    api, admin_token, container, tenant, worker
):
    key = str(uuid.uuid4())
    assert api.post("/admin/v1/locations", admin_token, LOCATION, key=key).status_code == 201
    other = api.post("/admin/v1/locations", admin_token, LOCATION | {"name": "Other"}, key=key)
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert other.json["type"].endswith("/idempotency-key-reused")
    with container.sessions() as s:
        assert s.scalar(select(func.count()).where(Location.biz_entity_id == tenant)) == 1


def test_missing_key_is_400_and_nothing_is_recorded(api, admin_token, container):
    with container.sessions() as s:
        before = s.scalar(select(func.count()).select_from(WriteRequest))
    resp = api.client.simulate_post(
        "/admin/v1/locations", json=LOCATION, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert resp.status_code == 400
    assert resp.json["type"].endswith("/idempotency-key-missing")
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WriteRequest)) == before


def test_invalid_input_never_reaches_the_queue(api, admin_token, container):
    with container.sessions() as s:
        before = s.scalar(select(func.count()).select_from(WriteRequest))
    resp = api.post("/admin/v1/locations", admin_token, {"name": "", "timezone": "Mars/Base"})
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json["errors"]}
    assert fields == {"name", "timezone"}
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WriteRequest)) == before


def test_without_a_worker_the_api_answers_202_and_the_key_is_409_while_pending(
    idle_api, settings, tenant, idle_container
):
    api, container = idle_api, idle_container
    token = token_for(settings, "admin", tenant)
    key = str(uuid.uuid4())
    resp = api.post("/admin/v1/locations", token, LOCATION, key=key, Prefer="wait=0.2")
    assert resp.status_code == 202
    url = resp.headers["Location"]
    assert url.startswith("/v1/requests/")
    assert api.get(url, token).json["status"] == "pending"
    again = api.post("/admin/v1/locations", token, LOCATION, key=key)
    assert again.status_code == 409
    assert again.json["type"].endswith("/request-in-progress")
    # Someone else cannot see it: 404, not 403.
    stranger = token_for(settings, "admin", tenant)
    assert api.get(url, stranger).status_code == 404
    # The write runs when a worker does (executed here directly, as the actor would).
    execute.execute(container, uuid.UUID(url.rsplit("/", 1)[1]))
    done = api.get(url, token).json
    assert done["status"] == "succeeded" and done["http_status"] == 201
    assert done["result"]["name"] == "Camden"


def test_respond_async_returns_202_and_the_worker_completes_it(api, admin_token, worker):
    resp = api.post("/admin/v1/locations", admin_token, LOCATION, Prefer="respond-async")
    assert resp.status_code == 202
    done = wait_done(api, admin_token, resp.headers["Location"])
    assert done["status"] == "succeeded"
    assert done["location"].startswith("/admin/v1/locations/")


def test_a_redelivered_message_changes_nothing(api, admin_token, container, tenant, worker):
    resp = api.post("/admin/v1/locations", admin_token, LOCATION)
    write_id = uuid.UUID(resp.headers["X-Write-Id"])
    # At-least-once delivery: the same message again, twice, concurrently with nothing.
    execute.execute(container, write_id)
    container.dispatch.execute_write(write_id, None)
    time.sleep(0.5)
    with container.sessions() as s:
        assert s.scalar(select(func.count()).where(Location.biz_entity_id == tenant)) == 1
        row = s.get(WriteRequest, write_id)
        assert row is not None and row.status == "succeeded" and row.http_status == 201


def test_a_refused_write_is_recorded_as_failed_with_its_problem(api, admin_token, worker):
    missing = str(uuid.uuid4())
    resp = api.patch(f"/admin/v1/locations/{missing}", admin_token, {"name": "X"})
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_another_brands_objects_are_not_found(api, admin_token, settings, worker):
    created = api.post("/admin/v1/locations", admin_token, LOCATION).json
    other_brand = token_for(settings, "admin", uuid.uuid4())
    assert api.get(f"/admin/v1/locations/{created['id']}", other_brand).status_code == 404
    patched = api.patch(f"/admin/v1/locations/{created['id']}", other_brand, {"name": "Mine"})
    assert patched.status_code == 404


def test_users_never_reach_admin(api, settings):
    user = token_for(settings, "user", None)
    assert api.get("/admin/v1/locations", user).status_code == 403
    assert api.get("/admin/v1/locations").status_code == 401


def test_catalogue_create_update_and_public_reads(api, admin_token, worker):
    loc = api.post("/admin/v1/locations", admin_token, LOCATION).json
    other = api.post("/admin/v1/locations", admin_token, LOCATION | {"name": "Soho"}).json
    stylist = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Ana", "location_ids": [loc["id"], other["id"]]}
    )
    assert stylist.status_code == 201, stylist.text
    assert sorted(stylist.json["location_ids"]) == sorted([loc["id"], other["id"]])
    service = api.post(
        "/admin/v1/services",
        admin_token,
        {
            "location_id": loc["id"],
            "name": "Cut",
            "duration_minutes": 45,
            "buffer_minutes": 10,
            "price": "30.00",
            "stylist_ids": [stylist.json["id"]],
            "duration_overrides": {stylist.json["id"]: 60},
        },
    )
    assert service.status_code == 201, service.text
    assert service.json["duration_overrides"] == {stylist.json["id"]: 60}
    patched = api.patch(f"/admin/v1/services/{service.json['id']}", admin_token, {"active": False})
    assert patched.status_code == 200 and patched.json["active"] is False
    assert patched.json["duration_minutes"] == 45  # PATCH changes only what was sent
    public = api.get(f"/v1/locations/{loc['id']}/services").json
    assert public["items"] == []  # inactive services are not public
    stylists = api.get(f"/v1/locations/{other['id']}/stylists").json["items"]
    assert [s["name"] for s in stylists] == ["Ana"]


def test_a_stylist_at_another_brands_location_is_refused(api, admin_token, settings, worker):
    foreign = api.post("/admin/v1/locations", token_for(settings, "admin", uuid.uuid4()), LOCATION)
    # The other brand's token names a biz_entity that does not exist: FK refusal, not a 500.
    assert foreign.status_code == 422
    resp = api.post(
        "/admin/v1/stylists", admin_token, {"name": "Bo", "location_ids": [str(uuid.uuid4())]}
    )
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "location_ids"


@pytest.mark.parametrize("role, status", [("frontdesk", 403), ("manager", 201), ("admin", 201)])
def test_managers_and_admins_manage_the_catalogue_the_front_desk_does_not(
    api, settings, tenant, role, status, worker
):
    token = token_for(settings, role, tenant)
    assert api.post("/admin/v1/locations", token, LOCATION).status_code == status


def _pending_write(container, operation: str) -> uuid.UUID:
    from salon.auth import Principal
    from salon.infra.pii import pii_codec
    from salon.write_path.model import NewWriteRequest
    from salon.write_path.submit import record

    cmd = NewWriteRequest(
        operation,
        Principal(uuid.uuid4(), "admin", None),
        str(uuid.uuid4()),
        "POST",
        "/test",
        {"n": 1},
    )
    with container.sessions.begin() as s:
        row, _ = record(s, cmd, 1, pii_codec(container.settings))
    return row.id


def test_a_crashing_write_fails_for_good_after_max_attempts(idle_container):
    operations = idle_container.operations

    def crash(session, ctx):
        raise RuntimeError("a bug")

    operations["test.crash"] = model.Operation("test.crash", crash)
    try:
        write_id = _pending_write(idle_container, "test.crash")
        limit = idle_container.settings.write_max_attempts
        for _ in range(limit - 1):
            with pytest.raises(RuntimeError):
                execute.execute(idle_container, write_id)  # Dramatiq retries it
        assert execute.execute(idle_container, write_id) is None  # the last one settles it
        with idle_container.sessions() as s:
            row = s.get(WriteRequest, write_id)
            assert (row.status, row.http_status, row.failures) == ("failed", 500, limit)
            assert row.result["type"].endswith("/write-failed")
    finally:
        del operations["test.crash"]


def test_an_outage_never_counts_against_a_write(idle_container, settings):
    from sqlalchemy.exc import OperationalError

    operations = idle_container.operations

    def unreachable(session, ctx):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    operations["test.outage"] = model.Operation("test.outage", unreachable)
    try:
        write_id = _pending_write(idle_container, "test.outage")
        for _ in range(settings.write_max_attempts + 2):
            with pytest.raises(OperationalError):
                execute.execute(idle_container, write_id)
        with idle_container.sessions() as s:
            row = s.get(WriteRequest, write_id)
            assert (row.status, row.failures) == ("pending", 0)
    finally:
        del operations["test.outage"]


def test_re_sending_a_pending_write_backs_off(idle_container):
    from sqlalchemy import text

    write_id = _pending_write(idle_container, "location.create")
    redeliver = idle_container.settings.redeliver_after_seconds

    def age(seconds: float, sends: int) -> None:
        with idle_container.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE scheduler.idempotency_keys SET attempts = :n,"
                    " enqueued_at = now() - make_interval(secs => :s) WHERE id = :id"
                ),
                {"n": sends, "s": seconds, "id": write_id},
            )

    def sent() -> bool:
        resend.reenqueue_due(idle_container)
        with idle_container.sessions() as s:
            return s.get(WriteRequest, write_id).enqueued_at > dt.datetime.now(
                dt.UTC
            ) - dt.timedelta(seconds=1)

    age(redeliver + 1, sends=1)
    assert sent()  # first re-send after REDELIVER_AFTER_SECONDS
    age(redeliver + 1, sends=2)
    assert not sent()  # the second waits twice as long
    age(2 * redeliver + 1, sends=2)
    assert sent()


def _idle_pool_connections(engine, n: int) -> list[int]:
    """Check n connections out at once (so n distinct ones), return them to the pool idle."""
    from contextlib import ExitStack

    from sqlalchemy import text

    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(n)]
        return [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in conns]


def _terminate(settings, pids: list[int]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(settings.database_url, poolclass=NullPool)
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    admin.dispose()
    time.sleep(0.2)  # the FATAL message and EOF reach the idle sockets


def test_a_pooled_connection_whose_backend_died_is_replaced_at_checkout(settings):
    """No pre-ping round trip: the checkout sees the dead connection's readable socket."""
    from sqlalchemy import text

    from salon.bootstrap import build_engine

    engine = build_engine(settings)
    try:
        before = _idle_pool_connections(engine, 3)
        _terminate(settings, before)
        after = _idle_pool_connections(engine, 3)  # raises if a dead one were handed out
        assert not set(before) & set(after)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_recording_retries_once_on_a_connection_that_died_silently(settings, monkeypatch):
    """A dead connection the liveness check could not see fails the record's INSERT: it is
    retried on a new connection with the same write id, so it is recorded exactly once."""
    import salon.bootstrap
    from salon.auth import Principal
    from salon.bootstrap import bootstrap

    class Silent:  # as if the socket had nothing to read
        POLLIN = 1

        @staticmethod
        def poll() -> Any:
            class P:
                def register(self, *a: Any) -> None: ...
                def poll(self, *a: Any) -> list[Any]:
                    return []

            return P()

    c = bootstrap(settings.with_(redis_namespace=settings.redis_namespace + "-silent"))
    try:
        monkeypatch.setattr(salon.bootstrap, "select", Silent)
        _terminate(settings, _idle_pool_connections(c.engine, 1))
        cmd = model.NewWriteRequest(
            "location.create",
            Principal(uuid.uuid4(), "admin", uuid.uuid4()),
            str(uuid.uuid4()),
            "POST",
            "/admin/v1/locations",
            {"name": "x"},
        )
        _, created = submit._record_alone(c, cmd)
        assert created
        with c.sessions() as s:
            assert s.scalar(select(func.count()).where(WriteRequest.key == cmd.key)) == 1
    finally:
        c.close()


def test_an_operation_without_savepoint_refuses_before_writing_or_rolls_back_whole(
    idle_container,
):
    """`savepoint=False`: a refusal raised before any write is stored in the same transaction;
    a constraint violation after a write rolls the whole transaction back (the write too) and
    stores the refusal in a new one."""
    from sqlalchemy import text

    from salon.errors import NotFound

    operations = idle_container.operations

    name = f"probe-{uuid.uuid4().hex[:8]}"

    def refuse_first(session, ctx):
        raise NotFound("nothing here")

    def write_then_violate(session, ctx):
        session.execute(
            text(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (:id, :biz, :name, 'UTC')"
            ),
            {"id": uuid.uuid4(), "biz": ctx.principal.biz, "name": name},
        )
        session.execute(  # no such brand: a foreign key violation
            text(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (:id, :biz, 'x', 'UTC')"
            ),
            {"id": uuid.uuid4(), "biz": uuid.uuid4()},
        )
        raise AssertionError("unreachable")

    for op, run in (("test.refuse_first", refuse_first), ("test.violate", write_then_violate)):
        operations[op] = model.Operation(op, run, savepoint=False)
    try:
        with idle_container.engine.begin() as conn:
            biz = uuid.uuid4()
            conn.execute(
                text("INSERT INTO public.biz_entity (id, name) VALUES (:id, 'probe')"), {"id": biz}
            )
        for op, status in (("test.refuse_first", 404), ("test.violate", 422)):
            write_id = _pending_write(idle_container, op)
            with idle_container.engine.begin() as conn:  # the test operation's brand
                conn.execute(
                    text(
                        "UPDATE scheduler.idempotency_keys SET payload = jsonb_set(payload,"
                        " '{principal,biz}', to_jsonb(CAST(:biz AS text))) WHERE id = :id"
                    ),
                    {"biz": str(biz), "id": write_id},
                )
            outcome = execute.execute(idle_container, write_id)
            assert outcome is not None and outcome.status == status, outcome
            with idle_container.sessions() as s:
                row = s.get(WriteRequest, write_id)
                assert (row.status, row.http_status, row.failures) == ("failed", status, 0)
            assert execute.execute(idle_container, write_id) == outcome  # redelivered: the same
        with idle_container.sessions() as s:
            assert s.scalar(select(func.count()).where(Location.name == name)) == 0
    finally:
        for op in ("test.refuse_first", "test.violate"):
            del operations[op]


def test_re_sending_while_redis_is_down_marks_nothing_and_sends_at_once_when_back(
    idle_container, settings
):
    """A write is marked as re-sent only once its message went out: an outage of Redis does
    not push its next try back (it was: marked, send failed, next try 2x later)."""
    from salon.bootstrap import bootstrap

    write_id = _pending_write(idle_container, "location.create")
    redeliver = idle_container.settings.redeliver_after_seconds
    with idle_container.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler.idempotency_keys SET attempts = 1,"
                " enqueued_at = now() - make_interval(secs => :s) WHERE id = :id"
            ),
            {"s": redeliver + 1, "id": write_id},
        )
    down = bootstrap(settings.with_(redis_url="redis://127.0.0.1:1/0"))
    try:
        for _ in range(3):  # three scheduler ticks during the outage
            assert resend.reenqueue_due(down) == 0
    finally:
        down.close()
    with idle_container.sessions() as s:
        row = s.get(WriteRequest, write_id)
        assert row.attempts == 1
    from workers.actors import WRITES_QUEUE

    queue = f"{idle_container.settings.redis_namespace}-dramatiq:{WRITES_QUEUE}"
    before = idle_container.redis.llen(queue)
    assert resend.reenqueue_due(idle_container) >= 1  # Redis back: sent on the next tick
    assert idle_container.redis.llen(queue) > before
    with idle_container.sessions() as s:
        assert s.get(WriteRequest, write_id).attempts == 2


def test_re_sending_goes_in_chunks_each_committed_after_its_sends(idle_container):
    _broker_known(idle_container)  # no catch-up of other tests' pending writes first
    ids = [_pending_write(idle_container, "location.create") for _ in range(7)]
    with idle_container.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler.idempotency_keys SET attempts = 1, enqueued_at = now()"
                " - make_interval(secs => :s) WHERE id = ANY(:ids)"
            ),
            {"s": idle_container.settings.redeliver_after_seconds + 1, "ids": ids},
        )
    assert resend.reenqueue_due(idle_container, limit=5, chunk=2) == 5  # 2 + 2 + 1
    assert resend.reenqueue_due(idle_container, limit=5, chunk=2) >= 2  # the rest
    with idle_container.sessions() as s:
        assert {s.get(WriteRequest, i).attempts for i in ids} == {2}


def _broker_known(container) -> None:  # type: ignore[no-untyped-def]
    ns = container.settings.redis_namespace
    container.redis.set(resend.broker_epoch_key(ns), "known-since:2000-01-01T00:00:00+00:00")


def test_a_redis_that_lost_its_data_gets_every_pending_write_again_at_once(idle_container):
    """Not REDELIVER_AFTER_SECONDS after their last send: at the first tick that finds the
    marker gone, over as many ticks as `limit` needs; then the marker says it is known."""
    _broker_known(idle_container)
    ids = [_pending_write(idle_container, "location.create") for _ in range(3)]
    resend.reenqueue_due(idle_container)
    with idle_container.sessions() as s:
        assert {s.get(WriteRequest, i).attempts for i in ids} == {1}  # sent 0 s ago: not due

    key = resend.broker_epoch_key(idle_container.settings.redis_namespace)
    idle_container.redis.delete(key)  # what a restart without persistence leaves
    assert resend.reenqueue_due(idle_container, limit=1) == 1
    assert idle_container.redis.get(key).startswith(b"resend-before:")  # not finished
    resend.reenqueue_due(idle_container)
    assert idle_container.redis.get(key).startswith(b"known-since:")
    with idle_container.sessions() as s:
        assert {s.get(WriteRequest, i).attempts for i in ids} == {2}
    resend.reenqueue_due(idle_container)  # caught up: each is sent once
    with idle_container.sessions() as s:
        assert {s.get(WriteRequest, i).attempts for i in ids} == {2}
