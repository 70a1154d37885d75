"""Broken object-level authorization, tried in bulk: every object route and verb, on many ids
each (1,000 per read, `IDS_PER_WRITE` per write), by callers who must not reach the objects.

Victims: customer A (their bookings and write requests) and brand 1 (its locations,
stylists, services, rules, generation jobs, bookings, and its admin's write requests).
Attackers: customer B, brand 2's admin, and brand 1's stylist Zoe on bookings with the other
stylist, Yan. The ids of each route are the real ones first, then their neighbours (±1),
UUIDv7 of the same millisecond as a real one (what a guess from a seen id would try), UUIDv7
of now (`models.ids.new_id`) and random UUIDs. A caller the access table grants the route
gets 404 on every one of them (never a 2xx, never another's data); a caller it refuses gets
403 on the real ids (refused before any object is looked at: more ids would prove nothing
more). Writes go through the queue and the worker, each with its own
Idempotency-Key, and the answer checked is the outcome the client waits for. Afterwards
every row of A's and brand 1's is as it was.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text

from api.access import ACCESS, STYLIST_ACTIONS
from models.ids import new_id
from tests.conftest import new_tenant, token_for
from tests.integration.test_bookings import CUSTOMER, salon, slot_id

__all__ = ["salon"]  # the fixture, shared with test_bookings

IDS_PER_READ = 1000
# Not 1,000: every write is a transaction of the worker's, ~120 a second here (2 shared
# cores, the worker and the client in one process; `Prefer: respond-async` and polling did
# not do better, ~140), so 10 write verbs x 1,000 took ~85 s. The real ids and their
# neighbours are all among the 100; the rest are guesses that miss the same way.
IDS_PER_WRITE = 100
# The in-process app is called from a few threads: the worker's database work and the
# waits for its answers overlap the client's (one process, one GIL).
THREADS = 8
_LOW_80 = (1 << 80) - 1
ACTIONS = ("cancel", "complete", "no_show", "confirm", "reschedule")


def probe_ids(real: Sequence[str], count: int) -> list[str]:
    """`count` distinct ids: `real`, then near and far guesses (see the module's docstring)."""
    ids = dict.fromkeys(real)
    for r in real:
        n = uuid.UUID(r).int
        ids.update(dict.fromkeys([str(uuid.UUID(int=n + 1)), str(uuid.UUID(int=n - 1))]))
    kinds: list[Callable[[int], uuid.UUID]] = [
        # The millisecond of a real id, the rest (version, variant, random bits) a new one's.
        lambda i: uuid.UUID(
            int=(uuid.UUID(real[i % len(real)]).int & ~_LOW_80) | (new_id().int & _LOW_80)
        ),
        lambda i: new_id(),
        lambda i: uuid.uuid4(),
    ]
    i = 0
    while len(ids) < count:
        ids[str(kinds[i % 3](i))] = None
        i += 1
    assert len(ids) == count and set(real) <= set(ids)
    return list(ids)


def staff_change(free_slot: str) -> Callable[[int, str], dict[str, Any]]:
    """Bodies of a staff PATCH of a booking: every action in turn; a stylist's only those
    granted to them (another is 403 before any lookup, which would prove nothing here)."""

    def body(i: int, role: str) -> dict[str, Any]:
        actions = sorted(STYLIST_ACTIONS) if role == "stylist" else ACTIONS
        action = actions[i % len(actions)]
        return (
            {"action": action, "new_slot_id": free_slot}
            if action == "reschedule"
            else {"action": action}
        )

    return body


@dataclass(frozen=True)
class Attacker:
    role: str
    token: str


@dataclass(frozen=True)
class Verb:
    method: str
    template: str  # as in the router and `api.access.ACCESS`
    kind: str  # which real ids: a key of the test's `real`
    # A write's body, given the attempt's number and the caller's role.
    body: Callable[[int, str], dict[str, Any]] | None = None


def _snapshot(conn: Any, brand: uuid.UUID, principals: Sequence[str]) -> dict[str, list[Any]]:
    """Every row of brand 1's and of these principals', per table, in a stable order."""
    locs = "SELECT id FROM scheduler.locations WHERE biz_entity_id = :b"
    stylists = "SELECT id FROM scheduler.stylists WHERE biz_entity_id = :b"
    queries = {
        "locations": f"SELECT * FROM scheduler.locations WHERE id IN ({locs})",
        "stylists": f"SELECT * FROM scheduler.stylists WHERE id IN ({stylists})",
        "stylist_locations": (
            f"SELECT * FROM scheduler.stylist_locations WHERE stylist_id IN ({stylists})"
        ),
        "services": f"SELECT * FROM scheduler.services WHERE location_id IN ({locs})",
        "service_stylists": (
            "SELECT * FROM scheduler.service_stylists WHERE service_id IN"
            f" (SELECT id FROM scheduler.services WHERE location_id IN ({locs}))"
        ),
        "availability_rules": (
            f"SELECT * FROM scheduler.availability_rules WHERE location_id IN ({locs})"
        ),
        "slot_instances": f"SELECT * FROM scheduler.slot_instances WHERE location_id IN ({locs})",
        "free_runs": f"SELECT * FROM scheduler.free_runs WHERE location_id IN ({locs})",
        "bookings": "SELECT * FROM scheduler.bookings WHERE biz_entity_id = :b",
        "generation_jobs": "SELECT * FROM scheduler.generation_jobs WHERE biz_entity_id = :b",
        "generation_chunks": (
            f"SELECT * FROM scheduler.generation_chunks WHERE location_id IN ({locs})"
        ),
        "outbox_events": (
            "SELECT * FROM scheduler.outbox_events WHERE aggregate_id IN"
            " (SELECT id FROM scheduler.bookings WHERE biz_entity_id = :b)"
        ),
        "audit_events": "SELECT * FROM scheduler.audit_events WHERE biz_entity_id = :b",
        "idempotency_keys": (
            "SELECT * FROM scheduler.idempotency_keys WHERE principal = ANY(:principals)"
        ),
    }
    return {
        table: sorted(
            (tuple(row) for row in conn.execute(text(sql), {"b": brand, "principals": principals})),
            key=repr,
        )
        for table, sql in queries.items()
    }


@pytest.fixture
def victims(api, salon, container, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Customer A's bookings with both stylists (held and confirmed), their write requests,
    and brand 1's objects: the real ids per kind, A's token and own write requests, the
    principals whose rows count, and a free slot of brand 1's (a move's target)."""
    zoe, yan = salon["stylists"]
    a_sub = uuid.uuid4()
    a = token_for(settings, "user", None, a_sub)
    bookings: list[str] = []
    writes: list[str] = []
    for stylist, hour, confirm in [
        (yan, 9, True),
        (yan, 11, True),
        (yan, 14, False),
        (zoe, 10, True),
    ]:
        held = api.post(
            "/v1/bookings",
            a,
            {
                "slot_id": slot_id(container, stylist, hour),
                "service_id": salon["service"],
                "customer": CUSTOMER,
            },
        )
        assert held.status_code == 201, held.text
        bookings.append(held.json["booking_id"])
        writes.append(held.headers["X-Write-Id"])
        if confirm:
            done = api.post(f"/v1/bookings/{held.json['booking_id']}/confirm", a, {})
            assert done.status_code == 200, done.text
            writes.append(done.headers["X-Write-Id"])
    brand = salon["tenant"]
    with container.engine.connect() as conn:
        rows = {
            kind: [str(r) for r in conn.execute(text(sql), {"b": brand}).scalars()]
            for kind, sql in {
                "location_id": "SELECT id FROM scheduler.locations WHERE biz_entity_id = :b",
                "stylist_id": "SELECT id FROM scheduler.stylists WHERE biz_entity_id = :b",
                "service_id": (
                    "SELECT s.id FROM scheduler.services s JOIN scheduler.locations l"
                    " ON l.id = s.location_id WHERE l.biz_entity_id = :b"
                ),
                "rule_id": (
                    "SELECT r.id FROM scheduler.availability_rules r JOIN scheduler.locations l"
                    " ON l.id = r.location_id WHERE l.biz_entity_id = :b"
                ),
                "job_id": "SELECT id FROM scheduler.generation_jobs WHERE biz_entity_id = :b",
            }.items()
        }
        admin_key = conn.execute(
            text(
                "SELECT principal FROM scheduler.idempotency_keys WHERE principal LIKE 'admin:%'"
                " AND payload->'principal'->>'biz' = :b LIMIT 1"
            ),
            {"b": str(brand)},
        ).scalar_one()
        admin_writes = (
            conn.execute(
                text("SELECT id FROM scheduler.idempotency_keys WHERE principal = :p"),
                {"p": admin_key},
            )
            .scalars()
            .all()
        )
    assert all(rows.values()), rows
    return {
        "real": {
            **rows,
            "booking_id": bookings,
            # Zoe's attempts: only Yan's bookings are another stylist's.
            "yan_booking_id": bookings[:3],
            "request_id": writes + [str(w) for w in admin_writes],
        },
        "a_token": a,
        "a_writes": writes,
        "principals": [f"user:{a_sub}", admin_key],
        "free_slot": slot_id(container, zoe, 16),
    }


def test_nobody_reaches_another_principals_or_brands_objects_by_id(  # type: ignore[no-untyped-def]
    api, salon, victims, container, settings
):
    brand = salon["tenant"]
    attackers = {
        "user B": Attacker("user", token_for(settings, "user", None)),
        "brand 2's admin": Attacker("admin", token_for(settings, "admin", new_tenant(container))),
        "stylist Zoe": Attacker(
            "stylist", token_for(settings, "stylist", brand, uuid.UUID(salon["stylists"][0]))
        ),
    }
    free = victims["free_slot"]
    verbs = [
        Verb("GET", "/v1/bookings/{booking_id}", "booking_id"),
        Verb("POST", "/v1/bookings/{booking_id}/confirm", "booking_id", lambda i, role: {}),
        Verb(
            "POST",
            "/v1/bookings/{booking_id}/cancel",
            "booking_id",
            lambda i, role: {"reason": "x"},
        ),
        Verb(
            "POST",
            "/v1/bookings/{booking_id}/reschedule",
            "booking_id",
            lambda i, role: {"slot_id": free},
        ),
        Verb("GET", "/v1/requests/{request_id}", "request_id"),
        Verb("GET", "/admin/v1/bookings/{booking_id}", "booking_id"),
        Verb("PATCH", "/admin/v1/bookings/{booking_id}", "booking_id", staff_change(free)),
        Verb("GET", "/admin/v1/locations/{location_id}", "location_id"),
        Verb(
            "PATCH",
            "/admin/v1/locations/{location_id}",
            "location_id",
            lambda i, role: {"name": "Taken"},
        ),
        Verb("GET", "/admin/v1/stylists/{stylist_id}", "stylist_id"),
        Verb(
            "PATCH",
            "/admin/v1/stylists/{stylist_id}",
            "stylist_id",
            lambda i, role: {"active": False},
        ),
        Verb("GET", "/admin/v1/services/{service_id}", "service_id"),
        Verb(
            "PATCH",
            "/admin/v1/services/{service_id}",
            "service_id",
            lambda i, role: {"price": "0.01"},
        ),
        Verb("GET", "/admin/v1/availabilities/{rule_id}", "rule_id"),
        Verb(
            "PATCH",
            "/admin/v1/availabilities/{rule_id}",
            "rule_id",
            lambda i, role: {"is_closed": True},
        ),
        Verb("DELETE", "/admin/v1/availabilities/{rule_id}", "rule_id", lambda i, role: {}),
        Verb("GET", "/admin/v1/jobs/{job_id}", "job_id"),
    ]
    # Every route that names an object is here (the public catalogue's are anyone's).
    named = {key for key in ACCESS if "{" in key[0] and not key[0].startswith("/v1/locations/")}
    assert {(v.template, v.method) for v in verbs} == named

    # The ids are real: their owners read every one of them.
    for verb in verbs:
        if verb.method == "GET":
            mine = verb.template.startswith("/v1/")
            owner = victims["a_token"] if mine else salon["admin"]
            real = victims["a_writes"] if verb.kind == "request_id" else victims["real"][verb.kind]
            for object_id in real:
                path = re.sub(r"{\w+}", object_id, verb.template)
                assert api.get(path, owner).status_code == 200, path

    with container.engine.connect() as conn:
        before = _snapshot(conn, brand, victims["principals"])
    # Each table holds rows to watch, but `service_stylists`: the salon's service names none.
    assert [table for table, rows in before.items() if not rows] == ["service_stylists"]

    def attempt(who: Attacker, verb: Verb, i: int, object_id: str) -> tuple[str, int, str]:
        path = re.sub(r"{\w+}", object_id, verb.template)
        headers = {"Authorization": f"Bearer {who.token}"}
        if verb.body is None:
            resp = api.client.simulate_request(verb.method, path, headers=headers)
        else:
            headers["Idempotency-Key"] = str(uuid.uuid4())  # each attempt a write of its own
            resp = api.client.simulate_request(
                verb.method, path, headers=headers, json=verb.body(i, who.role)
            )
        return path, resp.status_code, resp.text

    wrong: list[str] = []
    tried = {"granted": 0, "refused": 0}
    with ThreadPoolExecutor(THREADS) as pool:
        for verb, (name, who) in itertools.product(verbs, attackers.items()):
            granted = who.role in ACCESS[(verb.template, verb.method)].grants
            real = victims["real"][verb.kind]
            if who.role == "stylist" and verb.kind == "booking_id":
                real = victims["real"]["yan_booking_id"]  # Zoe's own is hers to see
            if granted:
                ids = probe_ids(real, IDS_PER_READ if verb.body is None else IDS_PER_WRITE)
            else:
                ids = real
            tried["granted" if granted else "refused"] += len(ids)
            expected = 404 if granted else 403
            for path, status, body in pool.map(partial(attempt, who, verb), itertools.count(), ids):
                if status != expected:
                    wrong.append(f"{verb.method} {path} as {name}: {status} {body[:300]}")
    assert wrong == []
    # Reads by 1 + 3 + 2 + 5 granted cells, writes by 3 + 2 + 5: the loop did them all.
    assert tried["granted"] == 11 * IDS_PER_READ + 10 * IDS_PER_WRITE
    assert tried["refused"] > 0
    with container.engine.connect() as conn:
        after = _snapshot(conn, brand, victims["principals"])
    assert after.keys() == before.keys()
    for table, rows in before.items():
        assert after[table] == rows, table
