"""The authorization table (`api.access`) against the router, the docs and the app's answers,
on an app whose settings point nowhere (nothing connects before a refusal)."""

from __future__ import annotations

import uuid
from pathlib import Path

import falcon
import pytest
from falcon import inspect, testing

from api import access
from api.app import create_app
from salon.auth import issue_token
from salon.bootstrap import bootstrap
from salon.settings import Settings

NOWHERE = Settings(
    database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    redis_url="redis://127.0.0.1:1/0",
    rate_limit_per_minute=0,
    dev=True,  # development PII keys: nothing here stores any
)
SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture(scope="module")
def app():
    container = bootstrap(NOWHERE)
    yield create_app(container)
    container.close()


def served(app: falcon.App) -> set[tuple[str, str]]:
    return {
        (route.path, method.method)
        for route in inspect.inspect_routes(app)
        for method in route.methods
        if method.internal is False
    }


def test_the_router_and_the_table_list_the_same_routes(app):
    routes = served(app)
    assert routes - set(access.ACCESS) == set(), "routes without an access rule"
    assert set(access.ACCESS) - routes == set(), "access rules of routes nobody serves"


def test_docs_security_md_shows_the_table():
    assert access.markdown_table() in SECURITY_MD.read_text()


def test_every_grant_names_a_known_role_and_public_routes_grant_nothing():
    from salon.auth import ROLES

    for key, rule in access.ACCESS.items():
        assert set(rule.grants) <= set(ROLES), key
        assert not (rule.public and rule.grants), key
        assert rule.public or rule.grants, key


def _headers(role: str | None, biz: uuid.UUID | None = None) -> dict[str, str]:
    if role is None:
        return {}
    token = issue_token(NOWHERE, role=role, biz=biz or uuid.uuid4(), sub=uuid.uuid4())
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}


@pytest.mark.parametrize(
    "role, method, path, status",
    [
        (None, "GET", "/admin/v1/schedule", 401),
        ("frontdesk", "POST", "/admin/v1/locations", 403),
        ("frontdesk", "PATCH", "/admin/v1/services/0190a6e4-0000-7000-8000-000000000000", 403),
        (
            "frontdesk",
            "DELETE",
            "/admin/v1/availabilities/0190a6e4-0000-7000-8000-000000000000",
            403,
        ),
        ("frontdesk", "POST", "/admin/v1/slots/generate", 403),
        ("stylist", "GET", "/admin/v1/locations", 403),
        ("operator", "GET", "/admin/v1/bookings", 403),
        ("operator", "GET", "/v1/bookings", 403),
        ("operator", "GET", "/v1/requests/0190a6e4-0000-7000-8000-000000000000", 403),
        ("user", "GET", "/admin/v1/schedule", 403),
        ("manager", "POST", "/v1/bookings", 403),
    ],
)
def test_refusals_come_before_the_body_or_any_server(app, role, method, path, status):
    # The body is garbage: a refusal must come first (nothing parsed, nothing connected).
    resp = testing.TestClient(app).simulate_request(
        method, path, headers={**_headers(role), "Content-Type": "application/json"}, body="{"
    )
    assert resp.status_code == status, resp.text
    assert resp.json["status"] == status


def test_a_staff_token_without_a_brand_is_forbidden(app):
    token = issue_token(NOWHERE, role="admin", biz=None, sub=uuid.uuid4())
    resp = testing.TestClient(app).simulate_get(
        "/admin/v1/locations", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 403 and "biz" in resp.json["detail"]


class _Forgotten:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"secret": True}


def test_a_route_missing_from_the_table_is_refused_even_to_an_admin():
    container = bootstrap(NOWHERE)
    try:
        app = create_app(container)
        app.add_route("/admin/v1/forgotten", _Forgotten())
        client = testing.TestClient(app)
        resp = client.simulate_get("/admin/v1/forgotten", headers=_headers("admin"))
        assert resp.status_code == 403 and "no access rule" in resp.json["detail"]
        # A method the resource lacks is still Falcon's 405, not a refusal.
        assert client.simulate_delete("/v1/locations").status_code == 405
    finally:
        container.close()


def test_the_openapi_document_takes_its_roles_from_the_table(app):
    paths = testing.TestClient(app).simulate_get("/openapi.json").json["paths"]
    for (template, method), rule in access.ACCESS.items():
        op = paths[template][method.lower()]
        if rule.public:
            assert "security" not in op and "401" not in op["responses"], (template, method)
        else:
            assert op["security"] == [{"bearer": []}], (template, method)
            assert op["x-roles"] == list(rule.roles()), (template, method)
            assert {"401", "403"} <= set(op["responses"]), (template, method)
