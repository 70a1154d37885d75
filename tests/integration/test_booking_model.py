"""A hypothesis state machine of holds, confirms, cancels, reschedules and expiries from many
customers, through the API and a real worker, checked against a model.

The model predicts every answer (status and problem type): the hold limit (unexpired holds
only), taken times, a lapsed hold that nothing has marked yet (confirm and reschedule: 409
hold-expired, cancel: 409 booking-not-changeable, each marking it expired; a hold or a move over
its time marks it and succeeds), the customers' cut-off on a confirmed booking, a move to
another location (422 on slot_id), a move to either stylist, someone else's booking (404).

After every step the model must agree with PostgreSQL and the API on every booking: the row's
(status, stylist, start, location) and whether its hold has lapsed; each customer's list, and
GET of a lapsed hold (shown as expired, with no expiry time; the status filters agree); and the
booking's outbox events in order: exactly one per state change, with the state it changed to,
none for a refusal or a repeat. PostgreSQL's live bookings never overlap (an SQL overlap query
returns 0 rows). Holds lapse without the sweep and later steps act on them; the sweep is a step
of its own; 2-4 customers race for one stylist's overlapping times at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from tests.conftest import token_for

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=20)
ZONE = ZoneInfo("Europe/Madrid")
SERVICE = dt.timedelta(minutes=60)
QUARTER = dt.timedelta(minutes=15)
CUSTOMERS = 4  # more than one customer's hold limit's worth of contention
# The far day (no cut-off): 09:00, 09:45, ... 16:30 local; slots every quarter 09:00-18:00.
FAR_STARTS = [dt.datetime.combine(DAY, dt.time(9), ZONE) + k * 3 * QUARTER for k in range(11)]
# A few hours from now (inside the customers' cut-off, past the minimum notice): 4 starts,
# slots every quarter for 4 hours.
SOON_STARTS = 4
SOON_LEAD = dt.timedelta(hours=3)
START = st.integers(0, len(FAR_STARTS) + SOON_STARTS - 1)
# A hold's start: half the time in the soon window (where the cut-off bites).
HOLD_START = st.one_of(
    st.integers(0, len(FAR_STARTS) - 1),
    st.integers(len(FAR_STARTS), len(FAR_STARTS) + SOON_STARTS - 1),
)
# A move's target: (stylist, start index), or (about one in ten) a slot at the brand's other
# location.
TARGET = st.sampled_from(
    [(s, i) for s in (0, 1) for i in range(len(FAR_STARTS) + SOON_STARTS)] + [None] * 3
)
# Customer 0 makes half the holds (the hold limit is reached now and then).
HOLDER = st.sampled_from([0, 0, 0, 1, 2, 3])

OVERLAPS = text(
    """
    SELECT count(*) FROM scheduler.bookings a JOIN scheduler.bookings b
      ON a.stylist_id = b.stylist_id AND a.id < b.id
     AND a.start_at < b.end_at AND b.start_at < a.end_at
    WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
      AND a.location_id = :loc
    """
)
ROWS = text(
    """
    SELECT id::text AS id, status, stylist_id, start_at, location_id,
           (status = 'held' AND hold_expires_at <= now()) AS lapsed
    FROM scheduler.bookings WHERE location_id IN (:loc, :other) OR id = ANY(:ids)
    """
)
EVENTS = text(
    """
    SELECT aggregate_id::text AS booking, topic, payload FROM scheduler.outbox_events
    WHERE aggregate_id = ANY(:ids) ORDER BY outbox_events.id
    """
)
LAPSE = text(
    "UPDATE scheduler.bookings SET hold_expires_at = now() - interval '1 second' WHERE id = :id"
)
# An example's holds, lapsed or not, must not outlive it: the sweep marks every lapsed hold in
# the database, and other tests count what it marks.
RETIRE_HOLDS = text(
    "UPDATE scheduler.bookings SET status = 'expired', updated_at = now()"
    " WHERE location_id = :loc AND status = 'held'"
)


def soon_origin() -> dt.datetime:
    """The first soon start: SOON_LEAD from now, rounded up to a quarter hour (UTC)."""
    t = dt.datetime.now(dt.UTC) + SOON_LEAD
    t = t.replace(second=0, microsecond=0)
    return t + dt.timedelta(minutes=-t.minute % 15)


def make_salon(container, tenant) -> dict[str, Any]:
    """A location with two stylists (slots on the far day and in the soon window), and a second
    location of the brand where stylist 0 works too (one slot: a move there is refused)."""
    loc, other, service = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stylists = [uuid.uuid4(), uuid.uuid4()]
    soon = soon_origin()
    quarters = [dt.datetime.combine(DAY, dt.time(9), ZONE) + q * QUARTER for q in range(36)]
    quarters += [soon + q * QUARTER for q in range(16)]
    slots: dict[tuple[int, dt.datetime], uuid.UUID] = {}

    def add_slot(conn, location, stylist, start) -> uuid.UUID:
        slot = uuid.uuid4()
        conn.execute(
            text(
                "INSERT INTO scheduler.slot_instances (id, location_id, stylist_id,"
                " local_date, start_at, end_at) VALUES (:id, :l, :s, :d, :a, :b)"
            ),
            {
                "id": slot,
                "l": location,
                "s": stylist,
                "d": start.astimezone(ZONE).date(),
                "a": start,
                "b": start + QUARTER,
            },
        )
        return slot

    with container.engine.begin() as conn:
        for location, name in ((loc, "Madrid"), (other, "Madrid 2")):
            conn.execute(
                text(
                    "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                    " VALUES (:l, :b, :n, 'Europe/Madrid')"
                ),
                {"l": location, "b": tenant, "n": name},
            )
        conn.execute(
            text(
                "INSERT INTO scheduler.services (id, location_id, name,"
                " duration_minutes) VALUES (:s, :l, 'Cut', :m)"
            ),
            {"s": service, "l": loc, "m": SERVICE.seconds // 60},
        )
        for n, stylist in enumerate(stylists):
            conn.execute(
                text(
                    "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (:s, :b, 'S')"
                ),
                {"s": stylist, "b": tenant},
            )
            conn.execute(
                text("INSERT INTO scheduler.stylist_locations VALUES (:s, :l)"),
                {"s": stylist, "l": loc},
            )
            for start in quarters:
                slots[(n, start)] = add_slot(conn, loc, stylist, start)
        conn.execute(
            text("INSERT INTO scheduler.stylist_locations VALUES (:s, :l)"),
            {"s": stylists[0], "l": other},
        )
        elsewhere = add_slot(conn, other, stylists[0], FAR_STARTS[0] + 40 * QUARTER)
    return {
        "location": loc,
        "other": other,
        "service": service,
        "stylists": stylists,
        "slots": slots,
        "elsewhere": elsewhere,
        "starts": FAR_STARTS + [soon + k * 3 * QUARTER for k in range(SOON_STARTS)],
    }


@dataclass
class Booked:
    """The model of one booking. `status` is the row's; `lapsed`: a hold past its expiry that
    nothing has marked yet (the row says held, every reader says expired)."""

    owner: int
    stylist: int
    start: dt.datetime
    status: str = "held"
    lapsed: bool = False
    raced: bool = False  # won a race and was cancelled at once: left out of later picks
    # (topic, status, stylist, start) of every state change, in order: the outbox's rows.
    events: list[tuple[str, str, int, dt.datetime]] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return "expired" if self.lapsed else self.status

    @property
    def blocks(self) -> bool:
        """Takes the stylist's time: confirmed, or a hold not past its expiry."""
        return self.status == "confirmed" or (self.status == "held" and not self.lapsed)

    def record(self, topic: str) -> None:
        self.events.append((topic, self.status, self.stylist, self.start))


def problem(resp, status: int, slug: str, step: str) -> None:
    """The answer is this refusal (the events tell what a run exercised)."""
    assert resp.status_code == status, (step, status, slug, resp.status_code, resp.text)
    assert resp.json["type"].endswith("/" + slug), (step, slug, resp.text)
    event(f"{step}: {slug}")


class Bookings(RuleBasedStateMachine):
    api: Any = None
    container: Any = None
    settings_: Any = None
    tenant: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.salon = make_salon(self.container, self.tenant)
        self.customers = [token_for(self.settings_, "user", None) for _ in range(CUSTOMERS)]
        self.model: dict[str, Booked] = {}  # booking id -> its model, in the order created
        self.max_holds = self.settings_.max_holds_per_customer
        self.cutoff = dt.timedelta(hours=self.settings_.cancel_cutoff_hours)

    # --- the model's rules ------------------------------------------------------------------

    def _covered(self, stylist: int, start: dt.datetime) -> bool:
        return all((stylist, start + q * QUARTER) in self.salon["slots"] for q in range(4))

    def _fits(self, stylist: int, start: dt.datetime, exclude: str | None = None) -> bool:
        return self._covered(stylist, start) and not any(
            b.blocks
            and b.stylist == stylist
            and b.start < start + SERVICE
            and start < b.start + SERVICE
            for k, b in self.model.items()
            if k != exclude
        )

    def _unexpired_holds(self, customer: int) -> int:
        return sum(
            1
            for b in self.model.values()
            if b.owner == customer and b.status == "held" and not b.lapsed
        )

    def _too_late(self, b: Booked) -> bool:
        """A customer cannot free a confirmed booking's time inside the cut-off."""
        return b.status == "confirmed" and b.start - dt.datetime.now(dt.UTC) < self.cutoff

    def _expire(self, b: Booked) -> None:
        b.status, b.lapsed = "expired", False
        b.record("booking.expired")

    def _expire_stale(self, stylist: int, start: dt.datetime) -> None:
        """A hold or a move that succeeds first marks the stylist's lapsed holds over its time,
        up to a day past its start."""
        for b in self.model.values():
            if (
                b.lapsed
                and b.stylist == stylist
                and b.start < start + dt.timedelta(hours=24)
                and b.start + SERVICE > start
            ):
                event("a lapsed hold marked by a later hold or move over its time")
                self._expire(b)

    def _pick(self, data, *prefer: str) -> tuple[str, Booked]:
        """A booking: one whose (row's) status is in `prefer`, a live one inside the cut-off, a
        lapsed hold, or any (a quarter of the time each, when there is such a booking)."""
        mine = [k for k, b in self.model.items() if not b.raced]
        pools = {
            "preferred": [k for k in mine if self.model[k].status in prefer],
            "soon": [
                k for k in mine if self.model[k].blocks and self.model[k].start < FAR_STARTS[0]
            ],
            "lapsed": [k for k in mine if self.model[k].lapsed],
            "any": mine,
        }
        keys = pools[data.draw(st.sampled_from(list(pools)), label="pool")] or mine
        key = data.draw(st.sampled_from(keys), label="booking")
        return key, self.model[key]

    # --- requests -------------------------------------------------------------------------

    def _hold(self, customer: int, stylist: int, start: dt.datetime):
        return self.api.post(
            "/v1/bookings",
            self.customers[customer],
            {
                "slot_id": str(self.salon["slots"][(stylist, start)]),
                "service_id": str(self.salon["service"]),
                "customer": {"name": "C", "phone": "+34 600 000 000"},
            },
        )

    def _held(self, resp, customer: int, stylist: int, start: dt.datetime) -> None:
        assert resp.status_code == 201, resp.text
        event("hold: 201")
        assert resp.json["status"] == "held"
        self._same_place(resp.json, stylist, start)
        self._expire_stale(stylist, start)
        b = Booked(customer, stylist, start)
        b.record("booking.held")
        self.model[resp.json["booking_id"]] = b

    def _same_place(self, view: dict[str, Any], stylist: int, start: dt.datetime) -> None:
        assert view["stylist_id"] == str(self.salon["stylists"][stylist]), view
        assert dt.datetime.fromisoformat(view["start_at"]) == start, view

    def _expect_hold(self, customer: int, stylist: int, start: dt.datetime) -> str | None:
        """The refusal a hold gets, or None when it succeeds."""
        if self._unexpired_holds(customer) >= self.max_holds:
            return "hold-limit-reached"
        rows = sum(1 for b in self.model.values() if b.owner == customer and b.status == "held")
        if rows >= self.max_holds:
            event("hold: under the limit only because a hold lapsed")
        return None if self._fits(stylist, start) else "slot-unavailable"

    # --- rules ------------------------------------------------------------------------------

    @rule(customer=HOLDER, stylist=st.integers(0, 1), start=HOLD_START)
    def hold(self, customer, stylist, start):
        at = self.salon["starts"][start]
        refusal = self._expect_hold(customer, stylist, at)
        resp = self._hold(customer, stylist, at)
        if refusal is None:
            self._held(resp, customer, stylist, at)
        else:
            problem(resp, 409, refusal, "hold")

    # No lapsed hold may be about: which of the times won decides which lapsed holds the winner
    # marks (see `_expire_stale`), and the model must not depend on the race.
    @precondition(lambda self: not any(b.lapsed for b in self.model.values()))
    @rule(
        customers=st.lists(st.integers(0, CUSTOMERS - 1), min_size=2, max_size=4, unique=True),
        stylist=st.integers(0, 1),
        start=START,
        offsets=st.lists(st.sampled_from([0, 1, 2, 3]), min_size=4, max_size=4),
    )
    def hold_at_once(self, customers, stylist, start, offsets):
        """2-4 customers hold one stylist's times at once (threads, the real worker's threads
        behind them), each within 45 minutes of the others, so any two overlap: of those the
        model lets through, exactly one wins, any one; the others are refused as predicted.

        The model takes the winner in and checks everything with it held; then its customer
        cancels it, so that the rest of the run (and a replay of it) does not depend on which
        customer won the race or at what time."""
        asks = [
            (c, self.salon["starts"][start] + q * QUARTER)
            for c, q in zip(customers, offsets, strict=False)
        ]
        refusals = [self._expect_hold(c, stylist, at) for c, at in asks]
        barrier = threading.Barrier(len(asks))

        def send(ask: tuple[int, dt.datetime]):
            barrier.wait(timeout=10)
            return self._hold(ask[0], stylist, ask[1])

        with ThreadPoolExecutor(len(asks)) as pool:
            answers = list(pool.map(send, asks))
        won = [i for i, r in enumerate(answers) if r.status_code == 201]
        free = [i for i, refusal in enumerate(refusals) if refusal is None]
        assert len(won) == (1 if free else 0), [(r.status_code, r.text) for r in answers]
        event(f"hold_at_once: {len(asks)} at once, {len(free)} free, {len(won)} won")
        assert set(won) <= set(free)
        for i, (resp, refusal) in enumerate(zip(answers, refusals, strict=True)):
            if i in won:
                self._held(resp, asks[i][0], stylist, asks[i][1])
            else:
                problem(resp, 409, refusal or "slot-unavailable", "hold_at_once")
        if won:
            self.database_agrees_and_never_overlaps()
            self.customers_read_what_the_model_says()
            key = answers[won[0]].json["booking_id"]
            b = self.model[key]
            resp = self.api.post(f"/v1/bookings/{key}/cancel", self.customers[b.owner], {})
            assert resp.status_code == 200 and resp.json["status"] == "cancelled", resp.text
            b.status, b.raced = "cancelled", True
            b.record("booking.cancelled")

    @precondition(lambda self: any(not b.raced for b in self.model.values()))
    @rule(data=st.data())
    def confirm(self, data):
        key, b = self._pick(data, "held")
        resp = self.api.post(f"/v1/bookings/{key}/confirm", self.customers[b.owner], {})
        if b.lapsed:
            problem(resp, 409, "hold-expired", "confirm a lapsed hold")
            self._expire(b)
        elif b.status in ("held", "confirmed"):
            assert resp.status_code == 200 and resp.json["status"] == "confirmed", resp.text
            self._same_place(resp.json, b.stylist, b.start)
            event(f"confirm: 200 ({b.status})")
            if b.status == "held":
                b.status = "confirmed"
                b.record("booking.confirmed")
        elif b.status == "expired":
            problem(resp, 409, "hold-expired", "confirm")
        else:
            problem(resp, 409, "booking-not-changeable", "confirm")

    @precondition(lambda self: any(not b.raced for b in self.model.values()))
    @rule(data=st.data())
    def cancel(self, data):
        key, b = self._pick(data, "held", "confirmed")
        resp = self.api.post(f"/v1/bookings/{key}/cancel", self.customers[b.owner], {})
        if b.lapsed:
            problem(resp, 409, "booking-not-changeable", "cancel a lapsed hold")
            self._expire(b)
        elif b.status == "expired":
            problem(resp, 409, "booking-not-changeable", "cancel")
        elif self._too_late(b):
            problem(resp, 409, "cancellation-window-closed", "cancel")
        else:
            assert resp.status_code == 200 and resp.json["status"] == "cancelled", resp.text
            event(f"cancel: 200 ({b.status})")
            if b.status != "cancelled":
                b.status = "cancelled"
                b.record("booking.cancelled")

    @precondition(lambda self: any(not b.raced for b in self.model.values()))
    @rule(data=st.data(), to=TARGET)
    def reschedule(self, data, to):
        key, b = self._pick(data, "held", "confirmed")
        if to is None:
            slot = self.salon["elsewhere"]
        else:
            stylist, at = to[0], self.salon["starts"][to[1]]
            slot = self.salon["slots"][(stylist, at)]
        resp = self.api.post(
            f"/v1/bookings/{key}/reschedule", self.customers[b.owner], {"slot_id": str(slot)}
        )
        if b.lapsed:
            problem(resp, 409, "hold-expired", "reschedule a lapsed hold")
            self._expire(b)
        elif b.status == "expired":
            problem(resp, 409, "hold-expired", "reschedule")
        elif b.status == "cancelled":
            problem(resp, 409, "booking-not-changeable", "reschedule")
        elif to is not None and (stylist, at) == (b.stylist, b.start):
            # Already there: a repeat, whatever the cut-off.
            assert resp.status_code == 200, resp.text
            self._same_place(resp.json, b.stylist, b.start)
            event("reschedule: 200 to its own slot" + (" (late)" if self._too_late(b) else ""))
        elif self._too_late(b):
            problem(resp, 409, "reschedule-window-closed", "reschedule")
        elif to is None:
            problem(resp, 422, "validation-error", "reschedule")
            assert [e["field"] for e in resp.json["errors"]] == ["slot_id"], resp.text
        elif self._fits(stylist, at, exclude=key):
            assert resp.status_code == 200 and resp.json["status"] == b.status, resp.text
            self._same_place(resp.json, stylist, at)
            whose = "same" if stylist == b.stylist else "other"
            event(f"reschedule: 200 ({b.status}, {whose} stylist)")
            self._expire_stale(stylist, at)
            b.stylist, b.start = stylist, at
            b.record("booking.rescheduled")
        else:
            problem(resp, 409, "slot-unavailable", "reschedule")

    @precondition(lambda self: any(not b.raced for b in self.model.values()))
    @rule(data=st.data(), action=st.sampled_from(["read", "confirm", "cancel", "reschedule"]))
    def stranger(self, data, action):
        """Someone else's booking is not found, whatever they try; nothing changes."""
        key, b = self._pick(data)
        who = self.customers[(b.owner + data.draw(st.integers(1, CUSTOMERS - 1))) % CUSTOMERS]
        if action == "read":
            resp = self.api.get(f"/v1/bookings/{key}", who)
        else:
            body = {"slot_id": str(self.salon["slots"][(1 - b.stylist, b.start)])}
            resp = self.api.post(
                f"/v1/bookings/{key}/{action}", who, body if action == "reschedule" else {}
            )
        problem(resp, 404, "not-found", "stranger")

    def _lapse(self, key: str) -> None:
        with self.container.engine.begin() as conn:
            assert conn.execute(LAPSE, {"id": key}).rowcount == 1
        self.model[key].lapsed = True

    @precondition(
        lambda self: any(b.status == "held" and not b.lapsed for b in self.model.values())
    )
    @rule(data=st.data())
    def lapse(self, data):
        """A hold's time runs out; nothing marks it (the sweep has not run)."""
        keys = [k for k, b in self.model.items() if b.status == "held" and not b.lapsed]
        self._lapse(data.draw(st.sampled_from(keys), label="hold"))

    # Everything drawn before the first request: a draw while the worker's threads touch the
    # global `random` draws a warning from hypothesis.
    @rule(
        customer=HOLDER,
        asks=st.lists(st.tuples(st.integers(0, 1), HOLD_START), min_size=5, max_size=5),
        which=st.integers(0, 100),
    )
    def hold_past_the_limit(self, customer, asks, which):
        """A customer holds until the limit refuses them; then one of their holds lapses (not
        swept) and no longer counts, and they hold again (taken if the time is free, and the
        lapsed hold does not block it either)."""
        for stylist, start in asks[: self.max_holds + 1]:
            self.hold(customer, stylist, start)
        keys = [
            k
            for k, b in self.model.items()
            if b.owner == customer and b.status == "held" and not b.lapsed
        ]
        if len(keys) < self.max_holds:
            return  # some times were taken: not at the limit
        self._lapse(keys[which % len(keys)])
        event("lapse: a hold of a customer at the limit")
        self.hold(customer, *asks[-1])

    @precondition(lambda self: any(b.lapsed for b in self.model.values()))
    @rule()
    def sweep(self):
        """The periodic sweep marks every lapsed hold (batches until one comes back short)."""
        from salon.bookings.holds import expire_due_holds
        from salon.infra.pii import pii_codec

        swept: set[str] = set()
        pii = pii_codec(self.container.settings)
        while True:
            with self.container.sessions.begin() as session:
                batch = expire_due_holds(session, pii, batch=50)
                swept |= {str(b.id) for b in batch}
            if len(batch) < 50:
                break
        lapsed = {k for k, b in self.model.items() if b.lapsed}
        assert swept & set(self.model) == lapsed
        event(f"sweep: {len(lapsed)} lapsed holds")
        for key in lapsed:
            self._expire(self.model[key])

    def teardown(self) -> None:
        with self.container.engine.begin() as conn:
            conn.execute(RETIRE_HOLDS, {"loc": self.salon["location"]})

    # --- what everyone must agree on after every step -----------------------------------------

    @invariant()
    def database_agrees_and_never_overlaps(self):
        ids = [uuid.UUID(k) for k in self.model]
        with self.container.engine.connect() as conn:
            assert conn.execute(OVERLAPS, {"loc": self.salon["location"]}).scalar() == 0
            rows = conn.execute(
                ROWS, {"loc": self.salon["location"], "other": self.salon["other"], "ids": ids}
            ).all()
            events = conn.execute(EVENTS, {"ids": ids}).all()
        stylist_of = {s: n for n, s in enumerate(self.salon["stylists"])}
        assert {
            r.id: (
                r.status,
                stylist_of.get(r.stylist_id),
                r.start_at,
                r.location_id,
                bool(r.lapsed),
            )
            for r in rows
        } == {
            k: (b.status, b.stylist, b.start, self.salon["location"], b.lapsed)
            for k, b in self.model.items()
        }
        outbox: dict[str, list[tuple[str, str, int | None, dt.datetime]]] = {
            k: [] for k in self.model
        }
        for e in events:
            outbox[e.booking].append(
                (
                    e.topic,
                    e.payload["status"],
                    stylist_of.get(uuid.UUID(e.payload["stylist_id"])),
                    dt.datetime.fromisoformat(e.payload["start_at"]),
                )
            )
        assert outbox == {k: b.events for k, b in self.model.items()}

    @invariant()
    def customers_read_what_the_model_says(self):
        """Each customer's list holds exactly their bookings as the model shows them (a lapsed
        hold as expired, without an expiry); a lapsed hold reads so on its own, and the status
        filters count it as expired, not held."""
        for n, token in enumerate(self.customers):
            mine = {k: b for k, b in self.model.items() if b.owner == n}
            resp = self.api.get("/v1/bookings", token, page_size=1000)
            assert resp.status_code == 200, resp.text
            seen = {
                item["id"]: (
                    item["status"],
                    item["stylist_id"],
                    dt.datetime.fromisoformat(item["start_at"]),
                    item["hold_expires_at"] is None,
                )
                for item in resp.json["items"]
            }
            assert seen == {
                k: (
                    b.shown,
                    str(self.salon["stylists"][b.stylist]),
                    b.start,
                    b.shown != "held",
                )
                for k, b in mine.items()
            }
            if not any(b.lapsed for b in mine.values()):
                continue
            for key, b in mine.items():
                if b.lapsed:
                    one = self.api.get(f"/v1/bookings/{key}", token)
                    assert one.status_code == 200, one.text
                    assert one.json["status"] == "expired", one.json
                    assert one.json["hold_expires_at"] is None, one.json
            for status in ("held", "expired"):
                listed = self.api.get("/v1/bookings", token, status=status, page_size=1000)
                assert listed.status_code == 200, listed.text
                assert {item["id"] for item in listed.json["items"]} == {
                    k for k, b in mine.items() if b.shown == status
                }


def test_random_booking_histories_match_the_model(api, container, settings, tenant, worker):
    Bookings.api, Bookings.container = api, container
    Bookings.settings_, Bookings.tenant = settings, tenant
    run_state_machine_as_test(
        Bookings,
        settings=settings_for_machine(),
    )


def settings_for_machine():
    # 12 runs of 50 steps: about 30 s here (every step is a real write through the worker and
    # the checks read every booking). No shrinking: each replay is up to 50 real requests, and
    # the shrinker's own budget (5 minutes) would run into pytest's 300 s timeout; a failure
    # prints the steps of the run that found it, and the next run replays it first.
    return settings(
        max_examples=12,
        stateful_step_count=50,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
