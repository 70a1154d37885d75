"""Customers' PII at rest: nothing clear in bookings, write requests or outbox events (checked
in SQL), answers still clear to their owner, staff's search by any spelling of a phone, and a
key rotation round trip over every row."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from salon.auth import Principal
from salon.bookings import reads
from salon.bookings.rotation import rotate
from salon.infra.pii import PiiCodec, parse_keys, pii_codec
from tests.conftest import TEST_PII_HASH_KEY, TEST_PII_KEYS, token_for
from tests.integration.conftest import slot_at

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)
ZONE = ZoneInfo("America/New_York")


@pytest.fixture
def salon(api, admin_token, worker, tenant):  # type: ignore[no-untyped-def]
    opened = api.open_salon(
        admin_token,
        name="NYC",
        timezone="America/New_York",
        stylists=("Ivy", "Max"),
        days=(DAY, DAY),
    )
    return {**opened, "admin": admin_token, "tenant": tenant}


def person(name: str) -> dict[str, str]:
    """A customer with a phone and an email no other test uses (so LIKE finds only theirs)."""
    line = f"{random.randrange(10**6, 10**7)}"
    return {
        "name": name,
        "phone": f"+1 (555) {line[:3]}-{line[3:]}",
        "email": f"{name.split()[0].lower()}.{line}@example.com",
    }


def hold(api, container, token, salon, stylist: int, hour: int, who, **extra):  # type: ignore[no-untyped-def]
    start = dt.datetime.combine(DAY, dt.time(hour), ZONE)
    slot = slot_at(container, salon["stylists"][stylist], start)
    resp = api.post(
        "/v1/bookings",
        token,
        {"slot_id": slot, "service_id": salon["service"], "customer": who, **extra},
    )
    assert resp.status_code == 201, resp.text
    return resp


def count(container, sql: str, **params) -> int:  # type: ignore[no-untyped-def]
    with container.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def clear_forms(who: dict[str, str]) -> list[str]:
    digits = "".join(c for c in who["phone"] if c.isdigit())
    return [who["phone"], digits[-7:], who["email"], who["email"].split("@")[0]]


def test_phone_email_and_notes_are_nowhere_in_clear_yet_answers_show_them_to_their_owner(
    api, salon, container, settings
):
    ana, me = person("Ana Lopez"), token_for(settings, "user", None)
    held = hold(api, container, me, salon, 0, 10, ana, notes="allergic to latex")
    booking = held.json
    assert booking["customer"] == ana and booking["notes"] == "allergic to latex"
    assert api.get(f"/v1/bookings/{booking['id']}", me).json == booking
    write = api.get(f"/v1/requests/{held.headers['X-Write-Id']}", me).json
    assert write["result"]["customer"] == ana
    confirmed = api.post(f"/v1/bookings/{booking['id']}/confirm", me, {})
    assert confirmed.status_code == 200 and confirmed.json["customer"] == ana
    cancelled = api.patch(
        f"/admin/v1/bookings/{booking['id']}", salon["admin"], {"action": "cancel"}
    )
    assert cancelled.status_code == 200 and cancelled.json["customer"] == ana

    with container.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT customer_phone, customer_email, notes, pii_kid,"
                " customer_phone_hash IS NOT NULL AS hashed FROM scheduler.bookings WHERE id = :id"
            ),
            {"id": booking["id"]},
        ).one()
    assert row.pii_kid == "t1" and row.hashed
    assert all(v.startswith("t1:") for v in (row.customer_phone, row.customer_email, row.notes))
    for clear in [*clear_forms(ana), "latex"]:
        like = f"%{clear}%"
        assert (
            count(
                container,
                "SELECT count(*) FROM scheduler.bookings WHERE customer_phone LIKE :v"
                " OR customer_email LIKE :v OR notes LIKE :v",
                v=like,
            )
            == 0
        ), clear
        assert (
            count(
                container,
                "SELECT count(*) FROM scheduler.idempotency_keys WHERE payload::text LIKE :v"
                " OR result::text LIKE :v OR fingerprint LIKE :v",
                v=like,
            )
            == 0
        ), clear
        assert (
            count(
                container,
                "SELECT count(*) FROM scheduler.outbox_events WHERE payload::text LIKE :v",
                v=like,
            )
            == 0
        ), clear
    # The events show masks: a notifier knows whom it is about without knowing the number.
    with container.engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT topic, payload FROM scheduler.outbox_events WHERE aggregate_id = :id"
                " ORDER BY id"
            ),
            {"id": booking["id"]},
        ).all()
    assert [e.topic for e in events] == ["booking.held", "booking.confirmed", "booking.cancelled"]
    last_two = "".join(c for c in ana["phone"] if c.isdigit())[-2:]
    masked = {"name": "Ana Lopez", "phone": f"***{last_two}", "email": "a***@example.com"}
    assert [e.payload["customer"] for e in events] == [masked] * 3
    assert [e.payload["notes"] for e in events] == ["***"] * 3


def test_staff_find_a_customer_by_any_spelling_of_their_phone_or_their_email(
    api, salon, container, settings
):
    ana, anna, bob = person("Ana Lopez"), person("Anna Smith"), person("Bob Stone")
    ana_token, anna_token, bob_token = (token_for(settings, "user", None) for _ in range(3))
    mine = [hold(api, container, ana_token, salon, 0, h, ana).json["id"] for h in (9, 11, 13)]
    theirs = [
        hold(api, container, anna_token, salon, 1, 9, anna).json["id"],
        hold(api, container, bob_token, salon, 1, 11, bob).json["id"],
    ]
    digits = "".join(c for c in ana["phone"] if c.isdigit())
    spellings = [
        ana["phone"],
        f"+1/555/{digits[4:7]}/{digits[7:]}",
        f"+1.555.{digits[4:7]}.{digits[7:]}",
        f"+{digits}",
        digits,  # without its `+`
        f" +1 555 {digits[4:7]} {digits[7:]} ",
    ]
    staff = token_for(settings, "frontdesk", salon["tenant"])
    for q in spellings:
        found = api.get("/admin/v1/bookings", staff, q=q)
        assert found.status_code == 200, found.text
        assert sorted(b["id"] for b in found.json["items"]) == sorted(mine), q
        assert found.json["total"] == 3
        assert all(b["customer"] == ana for b in found.json["items"])
    by_email = api.get("/admin/v1/bookings", staff, q=ana["email"].upper()).json
    assert sorted(b["id"] for b in by_email["items"]) == sorted(mine)
    # A name's start, any case: both Anas, in a stable order across pages.
    prefix = api.get("/admin/v1/bookings", staff, q="an").json
    assert {b["id"] for b in prefix["items"]} == {*mine, theirs[0]}
    paged = [
        b["id"]
        for page in (1, 2, 3, 4)
        for b in api.get("/admin/v1/bookings", staff, q="AN", page=page, page_size=1).json["items"]
    ]
    assert paged == [b["id"] for b in prefix["items"]]
    assert api.get("/admin/v1/bookings", staff, q="an%").json["total"] == 0  # no wildcards
    assert api.get("/admin/v1/bookings", staff, q="+1 (555) 000-0000").json["total"] == 0
    # Another brand's staff find nothing of this one's customers.
    other = token_for(settings, "admin", uuid.uuid4())
    assert api.get("/admin/v1/bookings", other, q=ana["phone"]).json["total"] == 0


def _codec(keys: str) -> PiiCodec:
    return PiiCodec(parse_keys(keys), base64.b64decode(TEST_PII_HASH_KEY))


def test_a_key_rotation_reseals_every_row_and_leaves_them_readable(api, salon, container, settings):
    ana, me = person("Ana Lopez"), token_for(settings, "user", None)
    booking = hold(api, container, me, salon, 0, 15, ana, notes="window seat").json
    # What an older release wrote: a clear booking, write request and event.
    legacy_id, legacy_write = uuid.uuid4(), uuid.uuid4()
    old = person("Old Timer")
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
                " service_id, customer_name, customer_phone, customer_email, notes, status,"
                " start_at, end_at) VALUES (:id, :biz, :loc, :st, :svc, :name, :phone, :email,"
                " 'old notes', 'confirmed', :s, :s + interval '1 hour')"
            ),
            {
                "id": legacy_id,
                "biz": salon["tenant"],
                "loc": salon["location"],
                "st": salon["stylists"][1],
                "svc": salon["service"],
                "name": old["name"],
                "phone": old["phone"],
                "email": old["email"],
                "s": dt.datetime.combine(DAY, dt.time(18), ZONE),
            },
        )
        body = {"customer": old, "notes": "old notes"}
        conn.execute(
            text(
                "INSERT INTO scheduler.idempotency_keys (id, principal, key, fingerprint,"
                " operation, payload, status, http_status, result, expires_at) VALUES (:id,"
                " 'user:x', :key, 'f', 'booking.hold', CAST(:payload AS jsonb), 'succeeded', 201,"
                " CAST(:result AS jsonb), now() + interval '1 hour')"
            ),
            {
                "id": legacy_write,
                "key": str(legacy_write),
                "payload": json.dumps({"principal": {}, "body": body, "params": {}}),
                "result": json.dumps(body),
            },
        )
        conn.execute(
            text(
                "INSERT INTO scheduler.outbox_events (topic, aggregate_id, payload)"
                " VALUES ('booking.held', :id, CAST(:payload AS jsonb))"
            ),
            {"id": legacy_id, "payload": json.dumps(body)},
        )
    staff = token_for(settings, "manager", salon["tenant"])
    assert api.get("/admin/v1/bookings", staff, q=old["phone"]).json["total"] == 0  # not hashed yet

    t0_first = _codec(",".join(reversed(TEST_PII_KEYS.split(","))))  # t0 seals, t1 opens
    assert t0_first.kid == "t0"
    done = rotate(container.sessions, t0_first, batch=7)  # small batches: several rounds
    assert done.bookings >= 2 and done.write_requests >= 2 and done.events >= 1
    again = rotate(container.sessions, t0_first, batch=7)
    assert (again.bookings, again.write_requests, again.events) == (0, 0, 0)  # idempotent

    def kids_left(kid: str) -> int:
        return count(
            container,
            "SELECT (SELECT count(*) FROM scheduler.bookings WHERE pii_kid IS DISTINCT FROM :kid"
            "   OR customer_phone NOT LIKE :p OR customer_email NOT LIKE :p OR notes NOT LIKE :p)"
            " + (SELECT count(*) FROM scheduler.idempotency_keys"
            "   WHERE payload::text ~ :other OR result::text ~ :other)",
            kid=kid,
            p=f"{kid}:%",
            # A PII field whose value is not sealed under `kid` (clear, or another key).
            other=f'"(phone|email|notes)": "(?!{kid}:)',
        )

    assert kids_left("t0") == 0  # the old key (t1) is gone from every row
    only_t0 = _codec(TEST_PII_KEYS.split(",")[1])
    with container.sessions() as s:
        principal = Principal(uuid.UUID(int=0), "admin", salon["tenant"])
        assert reads.read_booking(
            s, principal, uuid.UUID(booking["id"]), only_t0
        ) == reads.read_booking(s, principal, uuid.UUID(booking["id"]), pii_codec(settings))
        legacy = reads.read_booking(s, principal, legacy_id, only_t0)
    assert legacy["customer"] == old and legacy["notes"] == "old notes"
    assert api.get(f"/v1/bookings/{booking['id']}", me).json == booking
    assert [
        b["id"] for b in api.get("/admin/v1/bookings", staff, q=old["email"]).json["items"]
    ] == [str(legacy_id)]
    for clear in clear_forms(old):
        assert (
            count(
                container,
                "SELECT count(*) FROM scheduler.idempotency_keys WHERE payload::text LIKE :v"
                " OR result::text LIKE :v",
                v=f"%{clear}%",
            )
            == 0
        )
        assert (
            count(
                container,
                "SELECT count(*) FROM scheduler.outbox_events WHERE payload::text LIKE :v",
                v=f"%{clear}%",
            )
            == 0
        )
    with container.engine.connect() as conn:
        payload = conn.execute(
            text("SELECT payload FROM scheduler.idempotency_keys WHERE id = :id"),
            {"id": legacy_write},
        ).scalar_one()
    assert only_t0.open_paths(payload["body"], f"write:{legacy_write}:body") == body

    # And back: the run's own configuration seals again; t0 leaves every row.
    rotate(container.sessions, pii_codec(settings))
    assert kids_left("t1") == 0
    assert api.get(f"/v1/bookings/{booking['id']}", me).json == booking
