"""/v1/slots asks in their plain form answered in front of Falcon (`api.slots_entrance`), against
real PostgreSQL and Redis: the same bytes and headers as the full path, the same rate limit, metrics
and access log, and everything unusual (and every failure) left to Falcon."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from falcon import testing
from prometheus_client import REGISTRY

from api.app import create_app
from api.slots_entrance import SlotsEntrance
from salon.bootstrap import Container, bootstrap
from salon.infra.logs import RequestIdFilter
from salon.public_times.exposures import ExposureService
from salon.public_times.stored_answers import StoredAnswers
from tests.conftest import token_for
from tests.integration.conftest import book

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=12)
SESSION = "5" * 32


class Layered:
    """The layer over a Falcon app that records which requests reached it."""

    def __init__(self, container: Container) -> None:
        reads = StoredAnswers(container)
        self.falcon_app = create_app(container, reads)
        self.reached: list[dict[str, Any]] = []
        self.lookups = 0
        lookup = reads.lookup

        def counting_lookup(*args: Any, **kwargs: Any) -> Any:
            self.lookups += 1
            return lookup(*args, **kwargs)

        reads.lookup = counting_lookup  # type: ignore[method-assign]
        self.lookups_in_redis = 0  # lookups that went to Redis
        pipeline = reads._pipelines.pipeline

        def counting_pipeline(commands: Any, **kwargs: Any) -> Any:
            self.lookups_in_redis += commands[0][0] == "HMGET"
            return pipeline(commands, **kwargs)

        reads._pipelines.pipeline = counting_pipeline  # type: ignore[method-assign]
        self.reads = reads

        def inner(environ: dict[str, Any], start_response: Any) -> Any:
            self.reached.append(environ)
            return self.falcon_app(environ, start_response)

        self.client = testing.TestClient(
            SlotsEntrance(inner, container, ExposureService(container, reads))
        )


@pytest.fixture
def salon(api, admin_token, worker) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token, name="Leeds", timezone="Europe/London", stylists=("A",), days=(DAY, DAY)
    )
    assert opened["job"]["status"] == "succeeded"
    return {"location_id": opened["location"], "service_id": opened["service"]}


@pytest.fixture
def layered(container) -> Layered:  # type: ignore[no-untyped-def]
    return Layered(container)


@pytest.fixture
def limited(settings) -> Iterator[Container]:  # type: ignore[no-untyped-def]
    c = bootstrap(settings.with_(rate_limit_per_minute=3))
    yield c
    c.close()


def ask(client: testing.TestClient, salon: dict[str, Any], **headers: str) -> testing.Result:
    params = {"date": DAY.isoformat(), **salon}
    return client.simulate_get("/v1/slots", params=params, headers=headers)


def comparable(result: testing.Result) -> dict[str, str]:
    return {k.lower(): v for k, v in result.headers.items() if k.lower() != "x-request-id"}


def test_a_new_ask_and_its_repeat_get_the_full_paths_bytes_and_headers_without_falcon(
    layered, salon, container
):
    first = ask(layered.client, salon, **{"X-Session-Id": SESSION})
    assert first.status_code == 200, first.text
    assert len(layered.reached) == 0  # a new ask in the plain form: chosen in front
    again = ask(layered.client, salon, **{"X-Session-Id": SESSION, "X-Request-Id": "req-7"})
    assert len(layered.reached) == 0
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["X-Request-Id"] == "req-7"
    # The full path's own answer to the same repeat: same bytes, same headers.
    plain = ask(testing.TestClient(create_app(container)), salon, **{"X-Session-Id": SESSION})
    assert plain.content == again.content
    assert comparable(plain) == comparable(again) == comparable(first)
    assert comparable(again)["x-session-id"] == SESSION
    # A new ask the full path chooses looks the same as one chosen in front.
    other = {"X-Session-Id": "4" * 32}
    full = ask(testing.TestClient(create_app(container)), salon, **other)
    assert comparable(full) == comparable(ask(layered.client, salon, **other))


def test_a_failed_new_ask_reaches_falcon_which_answers_the_problem_without_asking_again(
    layered, salon
):
    before = layered.lookups
    past = {**salon, "date": (DAY - dt.timedelta(days=400)).isoformat()}
    failed = layered.client.simulate_get(
        "/v1/slots", params=past, headers={"X-Session-Id": "6" * 32}
    )
    assert failed.status_code == 422
    assert failed.headers["Content-Type"] == "application/problem+json"
    assert "past" in failed.json["detail"]
    assert len(layered.reached) == 1
    assert layered.lookups == before + 1  # looked up once, in front; Falcon reused it


def test_an_ask_passed_on_keeps_the_request_id_it_got_in_front(layered, salon, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    past = {**salon, "date": (DAY - dt.timedelta(days=400)).isoformat()}
    with caplog.at_level(logging.INFO, logger="api.access"):
        failed = layered.client.simulate_get(
            "/v1/slots", params=past, headers={"X-Session-Id": "3" * 32}
        )
    assert failed.status_code == 422 and len(layered.reached) == 1
    environ = layered.reached[0]
    rid = failed.headers["X-Request-Id"]
    assert environ["salon.request_id"] == rid  # made in front, used by Falcon
    lines = [r for r in caplog.records if r.name == "api.access"]
    assert [(r.getMessage(), getattr(r, "request_id", None)) for r in lines] == [
        ("GET /v1/slots 422 Unprocessable Entity", rid)
    ]
    assert "salon.exposure_failure" not in environ  # taken by the resource: no cycle kept


def test_a_caller_without_a_session_gets_one_from_falcon(layered, salon):
    first = ask(layered.client, salon)
    assert first.status_code == 200
    assert len(layered.reached) == 1
    session = first.headers["X-Session-Id"]
    assert f"salon_sid={session}" in first.headers["Set-Cookie"]
    again = ask(layered.client, salon, Cookie=f"salon_sid={session}")
    assert again.content == first.content and len(layered.reached) == 1


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("timezone=Europe%2FLondon", False),  # a field only the full path knows
        ("date={day}&date={day}", True),  # a list where one date belongs
        ("stylist_id=", True),  # blank
    ],
)
def test_unusual_asks_are_left_to_falcon_and_answered_alike(layered, salon, query, refused):
    headers = {"X-Session-Id": "7" * 32}
    first = ask(layered.client, salon, **headers)
    extra = query.format(day=DAY.isoformat())
    base = f"date={DAY.isoformat()}&location_id={salon['location_id']}"
    unusual = layered.client.simulate_get(
        "/v1/slots",
        query_string=f"{base}&service_id={salon['service_id']}&{extra}",
        headers=headers,
    )
    assert len(layered.reached) == 1
    if refused:
        assert unusual.status_code == 422
        assert unusual.headers["Content-Type"] == "application/problem+json"
    else:
        assert unusual.status_code == 200, unusual.text
        assert unusual.content == first.content


def test_uppercase_ids_and_cookies_are_the_same_ask(layered, salon):
    first = ask(layered.client, salon, **{"X-Session-Id": "8" * 32})
    upper = {k: v.upper() for k, v in salon.items()}
    again = ask(layered.client, upper, Cookie=f"theme=dark; salon_sid={'8' * 32}", Origin="x.test")
    assert len(layered.reached) == 0
    assert again.content == first.content
    assert again.headers["X-Session-Id"] == "8" * 32
    assert "Access-Control-Allow-Origin" not in again.headers  # no CORS_ORIGINS: none


def test_a_customer_token_is_verified_in_front_and_a_bad_one_gets_falcons_401(
    layered, salon, settings, tenant
):
    token = token_for(settings, "user", tenant, sub=uuid.uuid4())
    first = ask(layered.client, salon, Authorization=f"Bearer {token}")
    again = ask(layered.client, salon, Authorization=f"Bearer {token}")
    assert first.status_code == again.status_code == 200
    assert len(layered.reached) == 0
    assert again.content == first.content and "X-Session-Id" not in again.headers
    bad = ask(layered.client, salon, Authorization=f"Bearer {token[:-4]}AAAA")
    assert bad.status_code == 401
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert len(layered.reached) == 1


def test_the_rate_limit_counts_each_request_once_and_refuses_with_falcons_429(
    limited, salon, settings
):
    if time.time() % 60 > 55:  # all five in one minute's window
        time.sleep(61 - time.time() % 60)
    layered = Layered(limited)
    codes = [ask(layered.client, salon, **{"X-Session-Id": "9" * 32}) for _ in range(5)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
    assert len(layered.reached) == 2  # the two refusals
    refused = codes[3]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) <= 60
    counters = limited.redis.keys(f"{settings.redis_namespace}:rate:read:127.0.0.1:*")
    assert [int(limited.redis.get(k) or 0) for k in counters] == [5]


def test_a_repeat_is_measured_and_logged_with_its_request_id(layered, salon, caplog):
    def served() -> float:
        labels = {"route": "/v1/slots", "method": "GET", "status": "200"}
        return REGISTRY.get_sample_value("salon_http_request_seconds_count", labels) or 0.0

    ask(layered.client, salon, **{"X-Session-Id": "a" * 32})
    before = served()
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="api.access"):
        ask(layered.client, salon, **{"X-Session-Id": "a" * 32, "X-Request-Id": "rid-42"})
    assert len(layered.reached) == 0
    assert served() == before + 1
    lines = [r for r in caplog.records if r.name == "api.access"]
    assert [(r.getMessage(), getattr(r, "request_id", None)) for r in lines] == [
        ("GET /v1/slots 200 OK", "rid-42")
    ]


def test_a_repeat_is_the_stored_answer_until_a_write_changes_its_stylist(
    layered, salon, container, tenant
):
    headers = {"X-Session-Id": "b" * 32}
    first = ask(layered.client, salon, **headers)
    in_redis = layered.lookups_in_redis
    for _ in range(3):
        assert ask(layered.client, salon, **headers).content == first.content
    assert layered.lookups_in_redis == in_redis + 3  # each repeat one lookup in Redis
    in_redis = layered.lookups_in_redis
    shown = first.json["exposed_slots"][0]
    start = dt.datetime.fromisoformat(shown["start_at"].replace("Z", "+00:00"))
    # A booking takes the first shown time (as the writes do: the row, then the bump).
    place = {"location": salon["location_id"], "service": salon["service_id"]}
    book(container, place, tenant, shown["stylist_id"], start)
    after = ask(layered.client, salon, **headers)
    assert layered.lookups_in_redis == in_redis + 1
    assert shown["start_at"] not in {s["start_at"] for s in after.json["exposed_slots"]}
