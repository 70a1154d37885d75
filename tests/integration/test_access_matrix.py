"""Every route the router serves by every kind of caller, checked against `api.access.ACCESS`.

Callers: anonymous, two customers (A owns the booking), each staff role of brand 1 (the
stylist is the booking's), brand 2's admin, an operator. Path ids name brand 1's real
objects. A refused cell is 401 (anonymous) or 403; an allowed one is neither, and a read of an
object beyond the caller's scope is 404 (another principal's or brand's), within it 200.
Writes are sent without an Idempotency-Key: allowed ones stop at 400 (or 422 for the body)
after authorization and change nothing, so every cell sees the same objects.
"""

from __future__ import annotations

import re
import uuid

import pytest
from falcon import inspect
from sqlalchemy import text

from api.access import ACCESS
from tests.conftest import new_tenant, token_for
from tests.integration.test_bookings import CUSTOMER, DAY, salon, slot_id

__all__ = ["salon"]  # the fixture, shared with test_bookings

CALLERS = (
    "anonymous",
    "user_a",
    "user_b",
    "stylist",
    "frontdesk",
    "manager",
    "admin",
    "admin_2",
    "operator",
)
ROLE = {"user_a": "user", "user_b": "user", "admin_2": "admin"}
BRAND_1_STAFF = {"stylist", "frontdesk", "manager", "admin"}


def served(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    falcon_app = getattr(app, "app", app)  # the Falcon app behind the /v1/slots entrance
    return sorted(
        (route.path, method.method)
        for route in inspect.inspect_routes(falcon_app)
        for method in route.methods
        if method.internal is False
    )


def reach(template: str) -> set[str] | None:
    """Who may see the object a route names (None: it names none, or anyone may)."""
    if template == "/v1/requests/{request_id}" or template.startswith("/v1/bookings/"):
        return {"user_a"}
    if template.startswith("/admin/") and ("{" in template or template == "/admin/v1/schedule"):
        return BRAND_1_STAFF
    return None


def test_every_route_for_every_caller_is_as_the_table_says(api, app, salon, container, settings):  # type: ignore[no-untyped-def]
    brand = salon["tenant"]
    stylist = salon["stylists"][0]
    subs = {name: uuid.uuid4() for name in CALLERS}
    subs["stylist"] = uuid.UUID(stylist)
    brands = {name: brand for name in CALLERS}
    brands.update(user_a=None, user_b=None, admin_2=new_tenant(container))
    tokens = {
        name: token_for(settings, ROLE.get(name, name), brands[name], subs[name])
        for name in CALLERS
        if name != "anonymous"
    }

    held = api.post(
        "/v1/bookings",
        tokens["user_a"],
        {
            "slot_id": slot_id(container, stylist, 10),
            "service_id": salon["service"],
            "customer": CUSTOMER,
        },
    )
    assert held.status_code == 201, held.text
    rules = api.get("/admin/v1/availabilities", salon["admin"]).json["items"]
    with container.engine.connect() as conn:
        job_id = conn.execute(
            text("SELECT id FROM scheduler.generation_jobs WHERE biz_entity_id = :b"),
            {"b": brand},
        ).scalar_one()
    ids = {
        "location_id": salon["location"],
        "stylist_id": stylist,
        "service_id": salon["service"],
        "rule_id": rules[0]["id"],
        "job_id": str(job_id),
        "booking_id": held.json["booking_id"],
        "request_id": held.headers["X-Write-Id"],
    }
    queries = {"/admin/v1/schedule": {"location_id": salon["location"], "date": DAY.isoformat()}}

    routes = served(app)
    assert len(routes) == len(ACCESS)
    wrong: list[str] = []
    cells = 0
    for template, method in routes:
        rule = ACCESS[(template, method)]
        path = re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], template)
        for caller in CALLERS:
            headers = {"Authorization": f"Bearer {tokens[caller]}"} if caller in tokens else {}
            if method in ("POST", "PATCH", "PUT"):
                resp = api.client.simulate_request(method, path, headers=headers, json={})
            else:
                resp = api.client.simulate_request(
                    method, path, headers=headers, params=queries.get(template)
                )
            cells += 1
            status = resp.status_code
            role = ROLE.get(caller, caller)
            if rule.public:
                expected = "not 401/403"
                ok = status not in (401, 403)
            elif caller == "anonymous":
                expected, ok = "401", status == 401
            elif role not in rule.grants:
                expected, ok = "403", status == 403
            else:
                who = reach(template)
                if method == "GET" and who is not None and caller not in who:
                    expected, ok = "404", status == 404
                elif method == "GET" and who is not None:
                    expected, ok = "200", status == 200
                else:
                    expected = "not 401/403/404"
                    ok = status not in (401, 403, 404)
            if not ok:
                wrong.append(f"{method} {template} as {caller}: {status}, expected {expected}")
    assert wrong == []
    assert cells == len(ACCESS) * len(CALLERS)
    # Nothing the matrix sent changed anything: the booking is still A's hold.
    assert api.get(f"/v1/bookings/{ids['booking_id']}", tokens["user_a"]).json["status"] == "held"


@pytest.mark.parametrize("caller", ["operator", "user"])
def test_operators_and_customers_reach_no_staff_route(api, salon, settings, caller):
    token = token_for(settings, caller, salon["tenant"] if caller == "operator" else None)
    admin_routes = [(t, m) for (t, m) in ACCESS if t.startswith("/admin/")]
    assert len(admin_routes) > 20
    for template, method in admin_routes:
        path = template.replace("{", "").replace("}", "")
        resp = api.client.simulate_request(
            method, path, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 403, (template, method, resp.status_code)
