"""The API's edge, in process against real PostgreSQL and Redis: rate limits nobody can dodge,
bad tokens and unknown paths counted, limits per route class, Redis down, security headers,
CORS, /metrics' guard and labels, chunked bodies."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from falcon import testing

from api.app import api_container, wsgi_app
from salon.bootstrap import Container, bootstrap
from tests.conftest import token_for


def client_of(container: Container) -> testing.TestClient:
    return testing.TestClient(wsgi_app(container))


@pytest.fixture
def make_client(settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    made: list[Container] = []

    def make(**changes: Any) -> testing.TestClient:
        # A namespace of its own: every test starts with no counts.
        changes.setdefault("redis_namespace", f"{settings.redis_namespace}-{uuid.uuid4().hex[:8]}")
        container = bootstrap(settings.with_(**changes))
        made.append(container)
        return client_of(container)

    yield make
    for c in made:
        c.close()


def fresh_window() -> None:
    """Start a burst early in a one-minute window, so the whole burst is counted in it."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


SPOOFS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def test_made_up_proxy_headers_do_not_escape_the_limit(make_client):
    """1,500 anonymous requests, each claiming another address: the product's default read
    limit (600 per minute) still refuses the caller, whose address is the socket's."""
    client = make_client(rate_limit_per_minute=600)
    codes: Counter[int] = Counter()
    for i in range(1500):
        fake = f"198.51.{i // 250}.{i % 250}"
        header = SPOOFS[i % 3]
        value = f"for={fake}" if header == "Forwarded" else fake
        path = "/v1/locations" if i % 2 else f"/v1/no-such-path-{i}"
        codes[client.simulate_get(path, headers={header: value}).status_code] += 1
    # Two windows at most: at most 1,200 let through.
    assert codes[429] >= 300, codes
    assert set(codes) <= {200, 404, 429}


def test_a_trusted_proxys_forwarded_hop_is_the_caller(make_client):
    fresh_window()
    client = make_client(rate_limit_per_minute=2, trusted_proxies="10.0.0.0/8")

    def get(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        return client.simulate_get(
            "/v1/locations", headers=headers, remote_addr="10.1.2.3"
        ).status_code

    assert [get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
    # Another client behind the same proxy has its own count; a made-up left hop changes nothing.
    assert [get(f"1.1.1.{i}, 203.0.113.2") for i in range(3)] == [200, 200, 429]


def test_rejected_tokens_and_unknown_paths_count_against_the_address(make_client, settings):
    fresh_window()
    client = make_client(rate_limit_per_minute=3)
    forged = token_for(settings.with_(jwt_secret="f" * 48), "admin", uuid.uuid4())
    codes = [
        client.simulate_get("/admin/v1/locations", headers={"Authorization": f"Bearer {forged}"})
        for _ in range(2)
    ]
    codes.append(client.simulate_get("/no/such/path"))
    codes.append(client.simulate_get("/v1/locations"))
    assert [r.status_code for r in codes] == [401, 401, 404, 429]
    assert codes[3].headers["Content-Type"] == "application/problem+json"
    assert 0 < int(codes[3].headers["Retry-After"]) <= 60


def test_booking_writes_have_their_own_limit_per_principal(make_client, settings, tenant):
    fresh_window()
    client = make_client(
        rate_limit_per_minute=600,
        rate_limit_booking_writes_per_minute=2,
        rate_limit_admin_writes_per_minute=3,
    )
    user, other = (token_for(settings, "user", None) for _ in range(2))

    def post(path: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        return client.simulate_post(path, json={}, headers=headers).status_code

    # Refused as invalid (422) until the limit, whatever the body: counted before the resource.
    assert [post("/v1/bookings", user) for _ in range(3)] == [422, 422, 429]
    assert post("/v1/bookings", other) == 422  # another principal, another count
    assert (
        client.simulate_get("/v1/bookings", headers={"Authorization": f"Bearer {user}"}).status_code
        == 200
    )
    admin = token_for(settings, "admin", tenant)
    assert [post("/admin/v1/locations", admin) for _ in range(4)] == [422, 422, 422, 429]
    assert post("/admin/v1/bookings", admin) == 422  # booking writes: a count of their own


def test_with_redis_down_reads_pass_and_writes_get_a_fast_503(settings, tenant, caplog):
    dead = settings.with_(
        redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=600, redis_timeout_seconds=0.3
    )
    container = api_container(dead)
    try:
        client = client_of(container)
        admin = token_for(settings, "admin", tenant)
        headers = {"Authorization": f"Bearer {admin}"}
        caplog.set_level(logging.WARNING, logger="api.middleware.rate_limit")
        started = time.monotonic()
        read = client.simulate_get("/admin/v1/locations", headers=headers)
        write = client.simulate_post(
            "/admin/v1/locations",
            json={"name": "x", "timezone": "UTC"},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        elapsed = time.monotonic() - started
    finally:
        container.close()
    assert read.status_code == 200, read.text
    assert write.status_code == 503, write.text
    assert write.headers["Content-Type"] == "application/problem+json"
    assert int(write.headers["Retry-After"]) > 0
    assert elapsed < 2.0
    assert any("rate limiter: Redis unavailable" in r.getMessage() for r in caplog.records)


SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("method", "path", "as_admin"),
    [
        ("GET", "/healthz", False),
        ("GET", "/v1/locations", False),
        ("GET", "/openapi.json", False),
        ("GET", "/docs", False),
        ("GET", "/no/such/path", False),
        ("GET", "/admin/v1/locations", False),  # 401
        ("GET", "/admin/v1/locations", True),
        ("POST", "/admin/v1/locations", True),  # 400: no Idempotency-Key
        ("GET", "/v1/bookings", True),  # 403
    ],
)
def test_every_answer_carries_the_security_headers(api, admin_token, method, path, as_admin):
    headers = {"Authorization": f"Bearer {admin_token}"} if as_admin else {}
    result = api.client.simulate_request(method, path, headers=headers)
    for name, value in SECURITY.items():
        assert result.headers.get(name) == value, (name, result.status)
    assert (result.headers.get("Cache-Control") == "no-store") is as_admin


def test_the_fast_paths_answers_carry_the_same_headers(make_client, api, admin_token, worker):
    from tests.integration.test_slots_entrance import DAY

    opened = api.open_salon(
        admin_token, name="Hull", timezone="Europe/London", stylists=("A",), days=(DAY, DAY)
    )
    client = make_client(cors_origins="https://shop.example")
    params = {
        "date": DAY.isoformat(),
        "location_id": opened["location"],
        "service_id": opened["service"],
    }
    session = {"X-Session-Id": "4" * 32, "Origin": "https://shop.example"}
    first = client.simulate_get("/v1/slots", params=params, headers=session)
    repeat = client.simulate_get("/v1/slots", params=params, headers=session)
    user = token_for(api.settings, "user", None)
    with_token = {"Authorization": f"Bearer {user}"}
    for result in (
        first,
        repeat,
        client.simulate_get("/v1/slots", params=params, headers=with_token),
    ):
        assert result.status_code == 200, result.text
        for name, value in SECURITY.items():
            assert result.headers.get(name) == value
    assert repeat.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Cache-Control" not in repeat.headers
    again = client.simulate_get("/v1/slots", params=params, headers=with_token)
    assert again.headers["Cache-Control"] == "no-store"
    stranger = client.simulate_get(
        "/v1/slots", params=params, headers={**session, "Origin": "https://evil.example"}
    )
    assert stranger.status_code == 200 and "Access-Control-Allow-Origin" not in stranger.headers


def test_cors_answers_listed_origins_on_the_public_api_and_none_on_admin(
    make_client, settings, tenant
):
    client = make_client(cors_origins="https://shop.example, https://other.example")
    listed = {"Origin": "https://shop.example"}
    public = client.simulate_get("/v1/locations", headers=listed)
    assert public.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Origin" in public.headers["Vary"]
    assert (
        "Access-Control-Allow-Origin"
        not in client.simulate_get(
            "/v1/locations", headers={"Origin": "https://evil.example"}
        ).headers
    )
    admin = token_for(settings, "admin", tenant)
    staff = client.simulate_get(
        "/admin/v1/locations", headers={**listed, "Authorization": f"Bearer {admin}"}
    )
    assert staff.status_code == 200 and "Access-Control-Allow-Origin" not in staff.headers
    preflight = client.simulate_options(
        "/v1/bookings",
        headers={
            **listed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, idempotency-key"
    admin_preflight = client.simulate_options(
        "/admin/v1/locations", headers={**listed, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in admin_preflight.headers
    anywhere = make_client(cors_origins="*")
    assert (
        anywhere.simulate_get("/v1/locations", headers={"Origin": "https://a.example"}).headers[
            "Access-Control-Allow-Origin"
        ]
        == "*"
    )
    assert (
        "Access-Control-Allow-Origin"
        not in anywhere.simulate_get(
            "/admin/v1/locations", headers={"Origin": "https://a.example"}
        ).headers
    )


def test_metrics_ask_for_their_token_and_bound_their_labels(make_client):
    guarded = make_client(metrics_token="m" * 40)
    assert guarded.simulate_get("/metrics").status_code == 403
    assert (
        guarded.simulate_get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code
        == 403
    )
    guarded.simulate_request("BREW", "/v1/locations")
    guarded.simulate_get(f"/made/up/{uuid.uuid4()}")
    scraped = guarded.simulate_get("/metrics", headers={"Authorization": f"Bearer {'m' * 40}"})
    assert scraped.status_code == 200
    assert 'method="BREW"' not in scraped.text and 'method="other"' in scraped.text
    assert "/made/up" not in scraped.text and 'route="unmatched"' in scraped.text
    open_ = make_client()  # no METRICS_TOKEN: the same host only
    assert open_.simulate_get("/metrics").status_code == 200  # loopback
    assert open_.simulate_get("/metrics", remote_addr="203.0.113.5").status_code == 403
    spoofed = {"X-Forwarded-For": "127.0.0.1"}
    assert (
        open_.simulate_get("/metrics", remote_addr="203.0.113.5", headers=spoofed).status_code
        == 403
    )


def test_a_chunked_body_is_read_or_refused_never_ignored(api, admin_token, worker):
    location = api.post("/admin/v1/locations", admin_token, {"name": "Old", "timezone": "UTC"}).json
    path = f"/admin/v1/locations/{location['id']}"
    chunked = {
        "Authorization": f"Bearer {admin_token}",
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    # A server that cannot say where a chunked body ends: 411, nothing changed.
    refused = api.client.simulate_patch(
        path, headers=chunked, body=b"", extras={"CONTENT_LENGTH": ""}
    )
    assert refused.status_code == 411, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    # One that does (gunicorn): the decoded body is read and applied.
    read = api.client.simulate_patch(
        path,
        headers={**chunked, "Idempotency-Key": str(uuid.uuid4())},
        body=b'{"name": "New"}',
        extras={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert read.status_code == 200, read.text
    assert api.get(path, admin_token).json["name"] == "New"
