"""Availability rules through the API: validation, clashes across locations, CRUD. The rules
that are the service's own (a stylist's location, a location-wide rule's clashes) are also
checked on the service directly (`direct`: a rolled-back session, no HTTP or worker)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from api.schemas.catalogue import LocationIn, StylistIn
from api.schemas.rules import RuleIn
from salon import operations
from salon.errors import DomainError


@pytest.fixture
def shop(api, admin_token, worker):  # type: ignore[no-untyped-def]
    """Two locations in different zones and a stylist who works at both."""
    london = api.post(
        "/admin/v1/locations", admin_token, {"name": "London", "timezone": "Europe/London"}
    ).json
    dubai = api.post(
        "/admin/v1/locations", admin_token, {"name": "Dubai", "timezone": "Asia/Dubai"}
    ).json
    leila = api.post(
        "/admin/v1/stylists",
        admin_token,
        {"name": "Leila", "location_ids": [london["id"], dubai["id"]]},
    ).json
    return {"london": london["id"], "dubai": dubai["id"], "leila": leila["id"]}


@pytest.fixture
def direct_shop(direct):  # type: ignore[no-untyped-def]
    """`shop`, made by the catalogue's operations on the rolled-back session."""
    london = direct.run(
        operations.LOCATION_CREATE, LocationIn(name="London", timezone="Europe/London")
    ).body
    dubai = direct.run(
        operations.LOCATION_CREATE, LocationIn(name="Dubai", timezone="Asia/Dubai")
    ).body
    leila = direct.run(
        operations.STYLIST_CREATE,
        StylistIn(name="Leila", location_ids=[london["id"], dubai["id"]]),
    ).body
    return {"london": london["id"], "dubai": dubai["id"], "leila": leila["id"]}


def refusal(direct, op, body) -> DomainError:  # type: ignore[no-untyped-def]
    """The error the operation refuses `body` with (the API answers its status and problem)."""
    with pytest.raises(DomainError) as refused:
        direct.run(op, body)
    return refused.value


def weekly(location: str, stylist: str | None, start: str, end: str, **extra) -> dict:
    return {
        "location_id": location,
        "stylist_id": stylist,
        "rule_kind": "weekly",
        "days_of_week": [1, 2, 3, 4, 5],
        "start_time": start,
        "end_time": end,
        **extra,
    }


def test_a_rule_is_created_read_changed_and_deleted(api, admin_token, shop):
    created = api.post(
        "/admin/v1/availabilities",
        admin_token,
        weekly(shop["london"], shop["leila"], "09:00", "17:00"),
    )
    assert created.status_code == 201, created.text
    rule = created.json
    assert rule["rule_kind"] == "WEEKLY" and rule["slot_granularity_minutes"] == 15
    assert api.get(created.headers["Location"], admin_token).json == rule
    patched = api.patch(
        f"/admin/v1/availabilities/{rule['id']}", admin_token, {"end_time": "24:00"}
    )
    assert patched.status_code == 200 and patched.json["end_time"] == "24:00"
    listed = api.get("/admin/v1/availabilities", admin_token, location_id=shop["london"]).json
    assert [r["id"] for r in listed["items"]] == [rule["id"]]
    deleted = api.client.simulate_delete(
        f"/admin/v1/availabilities/{rule['id']}",
        headers=api.headers(admin_token, str(uuid.uuid4())),
    )
    assert deleted.status_code == 204
    assert api.get(f"/admin/v1/availabilities/{rule['id']}", admin_token).status_code == 404


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start_time": "17:00", "end_time": "09:00"}, "end_time"),
        ({"days_of_week": [1, 8]}, "days_of_week.1"),
        ({"slot_granularity_minutes": 7}, "slot_granularity_minutes"),
        ({"rule_kind": "MONTHLY"}, "rule_kind"),
        ({"start_time": "9am"}, "start_time"),
        ({"days_of_week": None}, "days_of_week"),
        (
            {"rule_kind": "DATE_RANGE", "valid_from": "2027-01-10", "valid_to": "2027-01-01"},
            "valid_to",
        ),
    ],
)
def test_invalid_rules_are_422_naming_the_field(api, admin_token, shop, change, field):
    body = weekly(shop["london"], shop["leila"], "09:00", "17:00") | change
    resp = api.post("/admin/v1/availabilities", admin_token, body)
    assert resp.status_code == 422, resp.text
    assert field in [e["field"] for e in resp.json["errors"]]


def test_a_stylist_of_another_location_is_refused(direct, direct_shop):
    shop = direct_shop
    other = direct.run(
        operations.STYLIST_CREATE, StylistIn(name="Omar", location_ids=[shop["dubai"]])
    ).body
    resp = refusal(
        direct,
        operations.RULE_CREATE,
        RuleIn(**weekly(shop["london"], other["id"], "09:00", "17:00")),
    )
    assert resp.status == 422
    assert resp.problem()["errors"][0]["field"] == "stylist_id"


def test_a_rule_putting_a_stylist_at_two_locations_at_once_is_409_naming_the_rule(
    api, admin_token, shop
):
    dubai = api.post(
        "/admin/v1/availabilities",
        admin_token,
        weekly(shop["dubai"], shop["leila"], "09:00", "13:00"),
    ).json
    # London 06:00-08:00 in winter is 10:00-12:00 in Dubai: the same real hours.
    clash = api.post(
        "/admin/v1/availabilities",
        admin_token,
        weekly(shop["london"], shop["leila"], "06:00", "08:00"),
    )
    assert clash.status_code == 409, clash.text
    assert clash.json["clashing_rule_id"] == dubai["id"]
    # Later London hours are fine; so is a location-wide closing exception.
    ok = api.post(
        "/admin/v1/availabilities",
        admin_token,
        weekly(shop["london"], shop["leila"], "12:00", "18:00"),
    )
    assert ok.status_code == 201, ok.text
    closed = api.post(
        "/admin/v1/availabilities",
        admin_token,
        {
            "location_id": shop["london"],
            "rule_kind": "EXCEPTION",
            "start_time": "00:00",
            "end_time": "24:00",
            "valid_from": "2027-12-25",
            "is_closed": True,
        },
    )
    assert closed.status_code == 201, closed.text


def test_a_location_wide_rule_clashes_for_each_stylist_working_there(direct, direct_shop):
    shop = direct_shop
    dubai = direct.run(
        operations.RULE_CREATE, RuleIn(**weekly(shop["dubai"], shop["leila"], "09:00", "13:00"))
    ).body
    clash = refusal(
        direct, operations.RULE_CREATE, RuleIn(**weekly(shop["london"], None, "05:00", "07:00"))
    )
    assert clash.status == 409
    assert clash.problem()["clashing_rule_id"] == str(dubai["id"])


def test_what_a_direct_operation_commits_stays_in_the_tests_transaction(
    direct, db_session, container, tenant
):
    made = direct.run(operations.LOCATION_CREATE, LocationIn(name="Kept", timezone="UTC")).body
    db_session.commit()  # only a savepoint of the test's transaction: no other session sees it
    with container.engine.connect() as conn:
        seen = conn.execute(
            text("SELECT count(*) FROM scheduler.locations WHERE id = :id"), {"id": made["id"]}
        ).scalar_one()
    assert seen == 0
    assert (
        db_session.execute(
            text("SELECT count(*) FROM scheduler.locations WHERE id = :id"), {"id": made["id"]}
        ).scalar_one()
        == 1
    )
