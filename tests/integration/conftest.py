from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from falcon import testing
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import wsgi_app
from salon.auth import Principal
from salon.public_times.exposures import bump_versions
from salon.write_path.model import Operation, WriteContext, WriteOutcome
from tests.conftest import token_for


class Api:
    """An in-process client of the real app (real PostgreSQL, Redis and broker)."""

    def __init__(self, client: testing.TestClient, settings: Any) -> None:
        self.client = client
        self.settings = settings

    def headers(self, token: str | None, key: str | None = None, **extra: str) -> dict[str, str]:
        h = dict(extra)
        if token:
            h["Authorization"] = f"Bearer {token}"
        if key:
            h["Idempotency-Key"] = key
        return h

    def post(
        self, path: str, token: str | None, body: Any, key: str | None = None, **headers: str
    ) -> testing.Result:
        return self.client.simulate_post(
            path, json=body, headers=self.headers(token, key or str(uuid.uuid4()), **headers)
        )

    def patch(
        self, path: str, token: str | None, body: Any, key: str | None = None, **headers: str
    ) -> testing.Result:
        return self.client.simulate_patch(
            path, json=body, headers=self.headers(token, key or str(uuid.uuid4()), **headers)
        )

    def get(self, path: str, token: str | None = None, **params: Any) -> testing.Result:
        return self.client.simulate_get(path, params=params or None, headers=self.headers(token))

    def wait_job(self, token: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll a generation job until it has finished."""
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.get(f"/admin/v1/jobs/{job_id}", token).json
            if job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not finished: {job}")

    def open_salon(
        self, token: str, *, name: str, timezone: str, stylists: tuple[str, ...], days: Any
    ) -> dict[str, Any]:
        """A location with these stylists, a 60-minute cut, open 09:00-18:00 every day, its
        slots generated for `days` (first, last): the ids, and the finished job."""
        loc = self.post("/admin/v1/locations", token, {"name": name, "timezone": timezone}).json
        people = [
            self.post("/admin/v1/stylists", token, {"name": n, "location_ids": [loc["id"]]}).json
            for n in stylists
        ]
        service = self.post(
            "/admin/v1/services",
            token,
            {"location_id": loc["id"], "name": "Cut", "duration_minutes": 60},
        ).json
        rule = self.post(
            "/admin/v1/availabilities",
            token,
            {
                "location_id": loc["id"],
                "rule_kind": "WEEKLY",
                "days_of_week": [1, 2, 3, 4, 5, 6, 7],
                "start_time": "09:00",
                "end_time": "18:00",
            },
        )
        assert rule.status_code == 201, rule.text
        first, last = days
        job = self.post(
            "/admin/v1/slots/generate",
            token,
            {"from": first.isoformat(), "to": last.isoformat(), "location_id": loc["id"]},
        ).json
        return {
            "location": loc["id"],
            "stylists": [p["id"] for p in people],
            "service": service["id"],
            "job": self.wait_job(token, job["id"]),
        }


@pytest.fixture
def db_session(container) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """A session in a transaction that is rolled back when the test ends, whatever the code
    under test committed: service functions are called on it directly, without HTTP, Redis or
    a worker, and leave nothing behind. (SQLAlchemy's "joining a session into an external
    transaction": the session's commits only release savepoints of the outer transaction.)"""
    with container.engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


class Direct:
    """Runs write operations as the worker does (the operation's function on a session, given
    the body the API validated), on `db_session`: no HTTP, no broker, no write request."""

    def __init__(self, session: Session, settings: Any, biz: uuid.UUID) -> None:
        self.session, self.settings = session, settings
        self.admin = Principal(uuid.uuid4(), "admin", biz)

    def run(
        self,
        op: Operation,
        body: BaseModel | dict[str, Any] | None = None,
        principal: Principal | None = None,
        **params: str,
    ) -> WriteOutcome:
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json")  # as the API hands it on
        ctx = WriteContext(
            write_id=uuid.uuid4(),
            principal=principal or self.admin,
            body=body or {},
            params=params,
            request_id=None,
            settings=self.settings,
        )
        with self.session.begin_nested():  # a refusal undoes the operation's writes only
            return op.run(self.session, ctx)


@pytest.fixture
def direct(db_session, settings, tenant) -> Direct:  # type: ignore[no-untyped-def]
    return Direct(db_session, settings, tenant)


@pytest.fixture(scope="session")
def app(container):  # type: ignore[no-untyped-def]
    return wsgi_app(container)


@pytest.fixture
def api(app, settings) -> Api:  # type: ignore[no-untyped-def]
    return Api(testing.TestClient(app), settings)


@pytest.fixture
def admin_token(settings, tenant) -> str:  # type: ignore[no-untyped-def]
    return token_for(settings, "admin", tenant)


@pytest.fixture(scope="session")
def idle_container(settings):  # type: ignore[no-untyped-def]
    """Same database, but a Redis namespace no worker consumes: writes stay pending."""
    from salon.bootstrap import bootstrap

    c = bootstrap(settings.with_(redis_namespace=settings.redis_namespace + "-idle"))
    yield c
    c.close()


@pytest.fixture
def idle_api(idle_container, settings) -> Api:  # type: ignore[no-untyped-def]
    return Api(testing.TestClient(wsgi_app(idle_container)), settings)


def book(
    container,
    shop,
    tenant,
    stylist: str,
    start: dt.datetime,
    minutes: int = 60,
    status: str = "confirmed",
    expires: dt.datetime | None = None,
) -> None:
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
                " service_id, customer_name, customer_phone, status, start_at, end_at,"
                " hold_expires_at) VALUES (:id, :biz, :loc, :st, :svc, 'C', '+1', :status, :s, :e,"
                " :x)"
            ),
            {
                "id": uuid.uuid4(),
                "biz": tenant,
                "loc": shop["location"],
                "st": stylist,
                "svc": shop["service"],
                "status": status,
                "s": start,
                "e": start + dt.timedelta(minutes=minutes),
                "x": expires,
            },
        )
    # As the booking writes do: the stylist's time changed on these dates.
    bump_versions(
        container, [], [(uuid.UUID(stylist), start, start + dt.timedelta(minutes=minutes))]
    )


def slot_at(container, stylist: str, start: dt.datetime) -> str:  # type: ignore[no-untyped-def]
    """The id of the stylist's generated slot starting at `start`."""
    with container.engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT id FROM scheduler.slot_instances"
                    " WHERE stylist_id = :s AND start_at = :t"
                ),
                {"s": stylist, "t": start},
            ).scalar_one()
        )
