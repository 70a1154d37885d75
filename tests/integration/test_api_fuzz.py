"""Schema-driven fuzzing of the whole HTTP API (schemathesis) against the real system.

Every operation of the app's own `/openapi.json` gets generated requests, valid and invalid
(schemathesis' examples, coverage and fuzzing phases), and every response is checked: never a
5xx, status code, content type and body as the document declares them, invalid input refused
with a 4xx, a protected operation refusing a request without its token, and every 4xx an
`application/problem+json` document of the app's error contract (`api/errors.py`).

In-process, as the other integration tests: `wsgi_app(container)` is exactly what gunicorn
serves, here on the run's own PostgreSQL database and Redis namespace, with a real Dramatiq
worker (the `worker` fixture) executing the writes, so a write is answered with its real outcome,
not a 202. Calling it through WSGI (`from_wsgi`) instead of a socket to gunicorn (the e2e
`system`) keeps a few thousand requests inside the time budget on two cores, and gunicorn's own
parsing of a request line is not what this test is about.

The writes carry valid tokens (a customer's, the tenant's admin's) and a fresh Idempotency-Key,
and real ids (a location, stylist, service, rule, job, free slots, a booking and its write) are
offered beside generated ones, so the fuzzing reaches the handlers and the worker, not only
401s and 404s. Deterministic: derandomized, bounded `max_examples`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import jwt
import pytest
import schemathesis
from falcon import testing
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from api.app import create_app
from api.writes import KEY_PATTERN
from models.tables import WriteRequest
from salon.auth import decode_token, issue_token
from salon.bootstrap import bootstrap
from salon.errors import PROBLEM_BASE
from salon.settings import Settings
from tests.conftest import new_tenant, token_for
from tests.integration.conftest import Api

pytestmark = pytest.mark.integration

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=9)
CUSTOMER = {"name": "Fuzz Test", "phone": "+44 20 7946 0000", "email": "fuzz@example.com"}
KEY = re.compile(KEY_PATTERN)
# Parameters and fields that carry a date.
DATE_NAMES = ("date", "from", "to", "date_from", "date_to")


# Settings pointing nowhere: nothing connects at construction. Their JWT secret is the
# default, as the run's `settings` are: the tokens are minted when the module is collected,
# as schemathesis builds its coverage cases then.
NOWHERE = Settings(
    database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    redis_url="redis://127.0.0.1:1/0",
    dev=True,  # development PII keys: nothing here stores any
)
BRAND = uuid.uuid4()
TOKENS = {"admin": token_for(NOWHERE, "admin", BRAND), "user": token_for(NOWHERE, "user", None)}


def _served_document() -> dict[str, Any]:
    """The app's `/openapi.json`, read when the module is collected (schemathesis makes one
    test per operation from it then). The document depends on the routes alone: an app on
    settings pointing nowhere serves the same one (nothing connects at construction), and the
    test checks that the real app serves it too."""
    container = bootstrap(NOWHERE)
    try:
        spec: dict[str, Any] = (
            testing.TestClient(create_app(container)).simulate_get("/openapi.json").json
        )
    finally:
        container.close()
    return spec


class RealApp:
    """The WSGI app schemathesis calls (its checks send probes of their own too): the real
    one, set by `world` once the run's database and worker exist."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


REAL_APP = RealApp()
DOCUMENT = _served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = REAL_APP
# Tokens come from the auth provider below; generated ones would only ever get 401.
schema.config.generation.update(with_security_parameters=False)
# A body over the limit is refused with a 413 before it is read: a rejection too.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
# The test's salon (see `world`), read by the auth provider and the hooks while they generate.
WORLD: dict[str, Any] = {}


@pytest.fixture(scope="module")
def world(app, worker, settings, container) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A brand and salon of this module's own with generated slots, and a customer's hold."""
    api = Api(testing.TestClient(app), settings)
    assert settings.jwt_secret == NOWHERE.jwt_secret
    new_tenant(container, BRAND)
    admin, user = TOKENS["admin"], TOKENS["user"]
    opened = api.open_salon(
        admin, name="Fuzz", timezone="Europe/London", stylists=("Ava", "Ben"), days=(DAY, DAY)
    )
    assert opened["job"]["status"] == "succeeded", opened["job"]
    day, loc = DAY.isoformat(), opened["location"]
    listed = api.get("/admin/v1/slots", admin, **{"from": day, "to": day, "location_id": loc})
    slots = [s["id"] for s in listed.json["items"][:12]]
    rule = api.get("/admin/v1/availabilities", admin, location_id=loc).json["items"][0]["id"]
    held = api.post(
        "/v1/bookings",
        user,
        {"slot_id": slots[-1], "service_id": opened["service"], "customer": CUSTOMER},
    )
    assert held.status_code == 201, held.text
    WORLD.update(
        # Real ids by the name of the parameter or field that carries them.
        ids={
            "location_id": opened["location"],
            "stylist_id": opened["stylists"][0],
            "service_id": opened["service"],
            "rule_id": rule,
            "job_id": opened["job"]["id"],
            "booking_id": held.json["booking_id"],
            "request_id": held.headers["X-Write-Id"],
            "slot_id": slots[0],
            "new_slot_id": slots[1],
        },
        slots=slots[:-1],  # the last one is held
    )
    REAL_APP.app = app
    yield WORLD
    WORLD.clear()
    REAL_APP.app = None


def _token(path: str) -> str:
    """The token an operation is meant for: the admin's under /admin, else the customer's."""
    return TOKENS["admin"] if path.startswith("/admin/") else TOKENS["user"]


def _real_values() -> dict[str, Any]:
    """What a parameter or field of each name may be given instead of a generated value, so
    that requests name the test's salon and day: ids, the day with slots, a time zone, a
    rule kind."""
    ids = WORLD["ids"]
    day = DAY.isoformat()
    return {
        **ids,
        "slot_id": st.sampled_from(WORLD["slots"]),
        "location_ids": ids["location_id"],  # each item (see `_with_real_values`)
        "stylist_ids": ids["stylist_id"],
        **dict.fromkeys(DATE_NAMES, day),
        "timezone": "Europe/London",
        "rule_kind": st.sampled_from(["WEEKLY", "date_range", "Exception"]),
    }


def _same_kind(name: str, value: Any) -> bool:
    """Whether a generated value is of the kind the real one is (a valid id for an id, a
    valid date for a date): only those are replaced, so an invalid case stays invalid."""
    if name in ("location_ids", "stylist_ids"):
        return isinstance(value, list) and bool(value) and all(_is_uuid(v) for v in value)
    if name in ("timezone", "rule_kind"):
        return isinstance(value, str)
    if name in DATE_NAMES:
        return isinstance(value, str) and len(value) == 10 and _is_date(value)
    return _is_uuid(value)


def _with_real_values(values: Any) -> Any:
    """The generated values, with those of a known name made real or not."""
    # Examples and coverage cases are built at collection, before `world` exists.
    if not isinstance(values, dict) or not WORLD:
        return st.just(values)
    known = _real_values()
    # A list of ids keeps its generated length: one too long must stay too long.
    swaps = {
        k: [known[k]] * len(v) if isinstance(v, list) else known[k]
        for k, v in values.items()
        if k in known and _same_kind(k, v)
    }
    if not swaps:
        return st.just(values)
    # Each one real or as generated, independently: a real location with an odd date too.
    drawn = st.fixed_dictionaries(
        {
            k: st.one_of(st.just(values[k]), v if isinstance(v, st.SearchStrategy) else st.just(v))
            for k, v in swaps.items()
        }
    )
    return drawn.map(lambda chosen: {**values, **chosen})


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@schema.auth(cache_by_key=lambda case, ctx: _token(case.operation.path))
class Tokens:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return _token(case.operation.path)

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.hook("flatmap_path_parameters")
def real_path_values(context: schemathesis.HookContext, values: dict[str, Any]) -> Any:
    return _with_real_values(values)


@schema.hook("flatmap_query")
def real_query_values(context: schemathesis.HookContext, values: dict[str, Any]) -> Any:
    return _with_real_values(values)


@schema.hook("flatmap_body")
def real_body_values(context: schemathesis.HookContext, body: Any) -> Any:
    return _with_real_values(body)


def assert_problem(status: int, content_type: str, body: Any) -> None:
    """An RFC 9457 document of the app's contract (`api/errors.py`): a stable `type` under the
    app's base, a title, the response's own status, and a detail."""
    assert content_type.split(";")[0] == "application/problem+json", (status, content_type)
    assert isinstance(body, dict), body
    assert str(body.get("type", "")).startswith(PROBLEM_BASE), body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert body.get("status") == status, body
    assert isinstance(body.get("detail"), str), body


@schemathesis.check
def problem_details(ctx: schemathesis.CheckContext, response: Any, case: Any) -> bool | None:
    """Every 4xx is a problem document of the app's contract."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert_problem(response.status_code, content_type, response.json())
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    problem_details,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_holds_its_documented_contract(case: schemathesis.Case, world) -> None:  # type: ignore[no-untyped-def]
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and KEY.match(key):
        # A valid key stays valid but fresh: a repeat would only replay another case's answer.
        headers["Idempotency-Key"] = str(uuid.uuid4())
        case.headers = headers
    case.call_and_validate(checks=CHECKS)
    CASES_SENT.append(case.operation.label)


# Cases this run sent: the write-outcome test below only expects writes after the fuzzing ran
# (alone, with -k or after --lf, it has none to read).
CASES_SENT: list[str] = []


def test_the_real_app_serves_the_document_fuzzed(app) -> None:  # type: ignore[no-untyped-def]
    assert testing.TestClient(app).simulate_get("/openapi.json").json == DOCUMENT


def test_no_write_of_the_fuzzing_crashed_or_ended_in_a_server_error(world, container) -> None:  # type: ignore[no-untyped-def]
    """A write not finished within the wait was answered 202: its end, later, must not be a
    server error either, nor a crash the worker retried (a null list in a PATCH was both)."""
    principals = [decode_token(NOWHERE, token).key for token in TOKENS.values()]
    query = select(
        WriteRequest.operation,
        WriteRequest.status,
        WriteRequest.http_status,
        WriteRequest.failures,
    ).where(WriteRequest.principal.in_(principals))
    deadline = time.monotonic() + 30
    while True:
        with container.sessions() as session:
            rows = session.execute(query).all()
        if all(r.status != "pending" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if CASES_SENT:
        assert len(rows) > 100  # the fuzzing's writes reached the worker
    bad = [r for r in rows if r.status == "pending" or r.failures or (r.http_status or 0) >= 500]
    assert not bad, bad


SECURED = [
    (method, path)
    for path, ops in DOCUMENT["paths"].items()
    for method, op in ops.items()
    if op.get("security")
]


@pytest.mark.parametrize("method, path", SECURED)
def test_a_protected_operation_refuses_a_missing_bad_or_wrong_token(app, method, path) -> None:  # type: ignore[no-untyped-def]
    client = testing.TestClient(app)
    url = re.sub(r"{\w+}", "0190a6e4-0000-7000-8000-000000000000", path)
    expired = issue_token(NOWHERE, role="admin", biz=BRAND, sub=uuid.uuid4(), ttl_seconds=-60)
    forged = jwt.encode(
        {
            "sub": str(uuid.uuid4()),
            "role": "admin",
            "biz": str(BRAND),
            "exp": int(time.time()) + 600,
        },
        "not-the-secret",
        algorithm="HS256",
    )
    refusals = [
        (None, 401),
        ("Bearer nope", 401),
        (f"Basic {TOKENS['admin']}", 401),
        (f"Bearer {expired}", 401),
        (f"Bearer {forged}", 401),
    ]
    # A token of a role the operation does not grant (`x-roles`, from `api.access`): a
    # customer's under /admin, a staff's on a customer's own.
    roles = DOCUMENT["paths"][path][method]["x-roles"]
    other = next((token for role, token in TOKENS.items() if role not in roles), None)
    if other is not None:
        refusals.append((f"Bearer {other}", 403))
    for authorization, status in refusals:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        if authorization:
            headers["Authorization"] = authorization
        resp = client.simulate_request(method.upper(), url, headers=headers, json={})
        assert resp.status_code == status, (authorization, resp.text)
        assert_problem(status, resp.headers["Content-Type"], resp.json)
