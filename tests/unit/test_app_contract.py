"""The app without any server: built from settings pointing nowhere (nothing connects at
construction), checked against its OpenAPI document and its error contract."""

from __future__ import annotations

import uuid

import pytest
from falcon import inspect, testing

from api.app import create_app
from api.writes import KEY_PATTERN
from salon.auth import issue_token
from salon.bootstrap import bootstrap
from salon.settings import Settings

NOWHERE = Settings(
    database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    redis_url="redis://127.0.0.1:1/0",
    dev=True,  # development PII keys: nothing here stores any,
    rate_limit_per_minute=0,
    max_body_bytes=1024,
)


@pytest.fixture(scope="module")
def app():
    container = bootstrap(NOWHERE)
    yield create_app(container)
    container.close()


@pytest.fixture
def client(app):
    return testing.TestClient(app)


def test_every_route_is_in_the_openapi_document_and_nothing_else(app, client):
    served = {
        (route.path, method.method.lower())
        for route in inspect.inspect_routes(app)
        for method in route.methods
        if method.internal is False
    }
    spec = client.simulate_get("/openapi.json").json
    documented = {(path, m) for path, ops in spec["paths"].items() for m in ops}
    assert spec["openapi"] == "3.1.0"
    assert served == documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (path, method)
            if method in ("post", "patch", "delete"):
                names = {p["name"] for p in op["parameters"]}
                assert "Idempotency-Key" in names, (path, method)
            if "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]


def test_the_document_declares_what_the_operations_answer(client):
    paths = client.simulate_get("/openapi.json").json["paths"]
    # An unknown id in a body or query (a slot, a location) is a 404, as one in the path is.
    for path, method in [
        ("/v1/bookings", "post"),
        ("/v1/dates", "get"),
        ("/v1/slots", "get"),
        ("/admin/v1/services", "post"),
        ("/admin/v1/slots/generate", "post"),
    ]:
        assert "404" in paths[path][method]["responses"], (path, method)
    assert "404" not in paths["/v1/locations"]["get"]["responses"]
    # A generation answers its job with a 202, as a write not finished in time answers its id.
    generate_202 = paths["/admin/v1/slots/generate"]["post"]["responses"]["202"]
    assert generate_202["content"]["application/json"]["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/JobOut"},
        {"$ref": "#/components/schemas/Accepted"},
    ]
    # The Idempotency-Key the API takes (else a 400), as the API checks it.
    (key,) = [
        p for p in paths["/v1/bookings"]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    ]
    assert key["schema"] == {"type": "string", "pattern": KEY_PATTERN}
    # The YAML document is a document (a mapping), not a string.
    yaml_200 = paths["/openapi.yaml"]["get"]["responses"]["200"]
    assert yaml_200["content"]["application/yaml"]["schema"] == {"type": "object"}


def test_the_document_uses_only_json_schema_keywords_for_bounds(client):
    """Pydantic writes a date's bounds as "ge"/"le", which no client or validator reads: the
    bounded dates say them in words instead."""
    doc = client.simulate_get("/openapi.json").json
    found: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{where}.{k}" for k in ("ge", "le", "gt", "lt") if k in node)
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(doc, "")
    assert not found, found
    slots_date = next(
        p for p in doc["paths"]["/v1/slots"]["get"]["parameters"] if p["name"] == "date"
    )
    assert "1900-01-01 to 2999-12-31" in slots_date["schema"]["description"]


def test_the_yaml_document_is_the_same_spec(client):
    import yaml

    assert (
        yaml.safe_load(client.simulate_get("/openapi.yaml").text)
        == client.simulate_get("/openapi.json").json
    )


def test_docs_pages_use_only_local_assets(client):
    for page in ("/docs", "/redoc"):
        html = client.simulate_get(page).text
        assert "http://" not in html and "https://" not in html
    assert client.simulate_get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.simulate_get("/static/redoc/redoc.standalone.js").status_code == 200


def _admin() -> dict[str, str]:
    token = issue_token(NOWHERE, role="admin", biz=uuid.uuid4(), sub=uuid.uuid4())
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}


JSON = {"Content-Type": "application/json"}
UNKNOWN_ID = "0190a6e4-0000-7000-8000-000000000000"
# A weekly rule at a location nobody knows: it passes the edge and fails at the record.
RULE = {
    "location_id": UNKNOWN_ID,
    "rule_kind": "WEEKLY",
    "days_of_week": [1],
    "start_time": "06:00",
    "end_time": "07:00",
}
ASK = {"location_id": UNKNOWN_ID, "service_id": UNKNOWN_ID}


@pytest.mark.parametrize(
    "method, path, staff, kwargs, status, slug",
    [
        ("GET", "/nowhere", False, {}, 404, "not-found"),
        ("DELETE", "/v1/locations", False, {}, 405, "method-not-allowed"),
        ("GET", "/admin/v1/locations", False, {}, 401, "unauthorized"),
        (
            "GET",
            "/admin/v1/locations",
            False,
            {"headers": {"Authorization": "Bearer nope"}},
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/admin/v1/locations",
            True,
            {"body": "x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported-media-type",
        ),
        (
            "POST",
            "/admin/v1/locations",
            True,
            {"body": "{" + " " * 2000 + "}", "headers": JSON},
            413,
            "payload-too-large",
        ),
        (
            "POST",
            "/admin/v1/locations",
            True,
            {"body": "{nope", "headers": JSON},
            400,
            "bad-request",
        ),
        (
            "POST",
            "/admin/v1/locations",
            True,
            {"json": {"name": "A", "timezone": "Nowhere/City"}},
            422,
            "validation-error",
        ),
        (
            "POST",
            "/admin/v1/locations",
            True,
            {"json": {"name": "A", "timezone": "UTC", "extra": 1}},
            422,
            "validation-error",
        ),
        (
            "POST",
            "/admin/v1/stylists",
            True,
            {"json": {"name": "A", "location_ids": []}},
            422,
            "validation-error",
        ),
        (
            "POST",
            "/admin/v1/services",
            True,
            {"json": {"location_id": str(uuid.uuid4()), "name": "A", "duration_minutes": 0}},
            422,
            "validation-error",
        ),
        ("GET", "/v1/locations", False, {"params": {"page_size": "5000"}}, 422, "validation-error"),
        # Dates the service computes around are bounded (1900-2999): beyond, the day's margins
        # overflowed (500s from /v1/dates and /v1/slots, a generation's worker crashed).
        *(
            ("GET", path, False, {"params": {**params, **ASK}}, 422, "validation-error")
            for path, params in [
                ("/v1/dates", {"from": "0001-01-01"}),
                ("/v1/dates", {"from": "9999-12-31"}),
                ("/v1/slots", {"date": "9999-12-31"}),
            ]
        ),
        (
            "POST",
            "/admin/v1/slots/generate",
            True,
            {"json": {"from": "9999-12-31", "to": "9999-12-31"}},
            422,
            "validation-error",
        ),
        # The ledger's date bounds a Redis stream read: 0001-01-01 gave it a negative id and
        # 9999-12-31 overflowed (both 500s).
        *(
            ("GET", "/admin/v1/exposures", True, {"params": {"date": d}}, 422, "validation-error")
            for d in ("0001-01-01", "9999-12-31")
        ),
        # A page whose offset is past a bigint was a 500 from PostgreSQL.
        ("GET", "/v1/locations", False, {"params": {"page": str(10**19)}}, 422, "validation-error"),
        # 24:00 only ends a day: as a start it was stored as 00:00 (the whole day open).
        *(
            (method, path, True, {"json": body}, 422, "validation-error")
            for method, path, body in [
                (
                    "POST",
                    "/admin/v1/availabilities",
                    {**RULE, "start_time": "24:00", "end_time": "24:00"},
                ),
                (
                    "PATCH",
                    f"/admin/v1/availabilities/{UNKNOWN_ID}",
                    {"start_time": "24:00"},
                ),
            ]
        ),
        # A rule's window runs a year from its start: a start in 9999 overflowed in the worker
        # (a 202, then retried for ever).
        *(
            (method, path, True, {"json": body}, 422, "validation-error")
            for method, path, body in [
                (
                    "POST",
                    "/admin/v1/availabilities",
                    {**RULE, "valid_from": "9999-12-01"},
                ),
                ("PATCH", f"/admin/v1/availabilities/{UNKNOWN_ID}", {"valid_from": "3000-01-01"}),
            ]
        ),
        # ... while "valid until 9999-12-31" (for ever) passes the edge: it reaches the
        # record, which is down here.
        (
            "POST",
            "/admin/v1/availabilities",
            True,
            {"json": {**RULE, "valid_from": "2999-12-31", "valid_to": "9999-12-31"}},
            503,
            "service-unavailable",
        ),
        # A PATCH may leave a field out, not null it: a null `location_ids`, `stylist_ids` or
        # `duration_overrides` crashed the write in the worker (retried, then a 500).
        *(
            (
                "PATCH",
                f"/admin/v1/{kind}/{UNKNOWN_ID}",
                True,
                {"json": body},
                422,
                "validation-error",
            )
            for kind, body in [
                ("stylists", {"location_ids": None}),
                ("services", {"stylist_ids": None}),
                ("services", {"duration_overrides": None}),
                ("locations", {"name": None}),
                ("availabilities", {"start_time": None}),
            ]
        ),
        # Dates and instants are ISO text: a number is not read as a Unix time (it was:
        # "0" -> 1970-01-01, "20240101" -> 1970-08-23).
        (
            "POST",
            "/admin/v1/slots/generate",
            True,
            {"json": {"from": "0", "to": "86400"}},
            422,
            "validation-error",
        ),
        (
            "POST",
            "/admin/v1/availabilities",
            True,
            {
                "json": {
                    "location_id": str(uuid.uuid4()),
                    "rule_kind": "WEEKLY",
                    "days_of_week": [1],
                    "start_time": "09:00",
                    "end_time": "18:00",
                    "valid_from": "0",
                }
            },
            422,
            "validation-error",
        ),
        ("GET", "/admin/v1/bookings", True, {"params": {"date_to": "0"}}, 422, "validation-error"),
        (
            "GET",
            "/admin/v1/exposures",
            True,
            {"params": {"since": "20240101"}},
            422,
            "validation-error",
        ),
        (
            "GET",
            "/v1/dates",
            False,
            {
                "params": {
                    "from": "86400",
                    "location_id": str(uuid.uuid4()),
                    "service_id": str(uuid.uuid4()),
                }
            },
            422,
            "validation-error",
        ),
    ],
)
def test_errors_are_problem_documents_with_stable_types(
    client, method, path, staff, kwargs, status, slug
):
    headers = {**(_admin() if staff else {}), **kwargs.pop("headers", {})}
    resp = client.simulate_request(method, path, headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json["type"] == f"https://salon.example/problems/{slug}"
    assert resp.json["status"] == status


def test_a_user_token_is_forbidden_on_admin(client):
    token = issue_token(NOWHERE, role="user", biz=None, sub=uuid.uuid4())
    resp = client.simulate_get("/admin/v1/locations", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert resp.json["type"].endswith("/forbidden")


def test_request_ids_are_echoed_or_made(client):
    assert (
        client.simulate_get("/healthz", headers={"X-Request-Id": "abc-1"}).headers["X-Request-Id"]
        == "abc-1"
    )
    made = client.simulate_get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32
    # A hostile id (log injection) is replaced, not echoed.
    assert (
        client.simulate_get("/healthz", headers={"X-Request-Id": "a\tb"}).headers["X-Request-Id"]
        != "a\tb"
    )


def test_metrics_count_requests_by_route_template(client):
    client.simulate_get("/healthz")
    client.simulate_get("/v1/locations/not-a-uuid/services")
    text = client.simulate_get("/metrics").text
    assert 'salon_http_request_seconds_count{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/v1/locations/{location_id}/services"' in text
    assert "not-a-uuid" not in text
