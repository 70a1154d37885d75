"""A hypothesis state machine of holds, confirms, cancels, reschedules and expiries from many
customers, through the API and a real worker, checked against a model; PostgreSQL's live
bookings never overlap (an SQL overlap query returns 0 rows after every step)."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
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
SERVICE_MINUTES = 60
STARTS = [dt.time(9 + q // 4, (q % 4) * 15) for q in range(0, 33, 3)]  # 09:00, 09:45, ...

OVERLAPS = text(
    """
    SELECT count(*) FROM scheduler.bookings a JOIN scheduler.bookings b
      ON a.stylist_id = b.stylist_id AND a.id < b.id
     AND a.start_at < b.end_at AND b.start_at < a.end_at
    WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
      AND a.location_id = :loc
    """
)


def make_salon(container, tenant) -> dict:
    loc, service = uuid.uuid4(), uuid.uuid4()
    stylists = [uuid.uuid4(), uuid.uuid4()]
    slots: dict[tuple[uuid.UUID, dt.time], uuid.UUID] = {}
    with container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (:l, :b, 'Madrid', 'Europe/Madrid')"
            ),
            {"l": loc, "b": tenant},
        )
        conn.execute(
            text(
                "INSERT INTO scheduler.services (id, location_id, name,"
                " duration_minutes) VALUES (:s, :l, 'Cut', :m)"
            ),
            {"s": service, "l": loc, "m": SERVICE_MINUTES},
        )
        for stylist in stylists:
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
            for q in range(36):  # 09:00-18:00
                local = dt.time(9 + q // 4, (q % 4) * 15)
                start = dt.datetime.combine(DAY, local, ZONE)
                slot = uuid.uuid4()
                slots[(stylist, local)] = slot
                conn.execute(
                    text(
                        "INSERT INTO scheduler.slot_instances (id, location_id, stylist_id,"
                        " local_date, start_at, end_at) VALUES (:id, :l, :s, :d, :a, :b)"
                    ),
                    {
                        "id": slot,
                        "l": loc,
                        "s": stylist,
                        "d": DAY,
                        "a": start,
                        "b": start + dt.timedelta(minutes=15),
                    },
                )
    return {"location": loc, "service": service, "stylists": stylists, "slots": slots}


class Bookings(RuleBasedStateMachine):
    api = container = settings_ = tenant = None

    def __init__(self) -> None:
        super().__init__()
        self.salon = make_salon(self.container, self.tenant)
        self.customers = [token_for(self.settings_, "user", None) for _ in range(3)]
        # booking id -> [customer index, stylist, start (local time), status]
        self.model: dict[str, list] = {}

    def _live(self, stylist, exclude: str | None = None) -> list[dt.time]:
        return [
            b[2]
            for k, b in self.model.items()
            if b[1] == stylist and b[3] in ("held", "confirmed") and k != exclude
        ]

    def _free(self, stylist, start: dt.time, exclude: str | None = None) -> bool:
        minutes = start.hour * 60 + start.minute
        if minutes + SERVICE_MINUTES > 18 * 60:
            return False
        return all(
            abs(minutes - (t.hour * 60 + t.minute)) >= SERVICE_MINUTES
            for t in self._live(stylist, exclude)
        )

    def _holds_of(self, customer: int) -> int:
        return sum(1 for b in self.model.values() if b[0] == customer and b[3] == "held")

    @rule(customer=st.integers(0, 2), stylist=st.integers(0, 1), start=st.sampled_from(STARTS))
    def hold(self, customer, stylist, start):
        s = self.salon["stylists"][stylist]
        resp = self.api.post(
            "/v1/bookings",
            self.customers[customer],
            {
                "slot_id": str(self.salon["slots"][(s, start)]),
                "service_id": str(self.salon["service"]),
                "customer": {"name": "C", "phone": "+34 600 000 000"},
            },
        )
        if self._holds_of(customer) >= 3:
            assert resp.status_code == 409 and resp.json["type"].endswith("/hold-limit-reached")
        elif self._free(s, start):
            assert resp.status_code == 201, resp.text
            self.model[resp.json["booking_id"]] = [customer, s, start, "held"]
        else:
            assert resp.status_code == 409 and resp.json["type"].endswith("/slot-unavailable")

    def _pick(self, data, statuses):
        keys = sorted(k for k, b in self.model.items() if b[3] in statuses)
        return data.draw(st.sampled_from(keys)) if keys else None

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def confirm(self, data):
        key = self._pick(data, ("held", "confirmed", "cancelled", "expired"))
        b = self.model[key]
        resp = self.api.post(f"/v1/bookings/{key}/confirm", self.customers[b[0]], {})
        if b[3] in ("held", "confirmed"):
            assert resp.status_code == 200 and resp.json["status"] == "confirmed", resp.text
            b[3] = "confirmed"
        else:
            assert resp.status_code == 409

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data):
        key = self._pick(data, ("held", "confirmed", "cancelled"))
        if key is None:
            return
        b = self.model[key]
        resp = self.api.post(f"/v1/bookings/{key}/cancel", self.customers[b[0]], {})
        assert resp.status_code == 200 and resp.json["status"] == "cancelled", resp.text
        b[3] = "cancelled"

    @precondition(lambda self: self.model)
    @rule(data=st.data(), start=st.sampled_from(STARTS))
    def reschedule(self, data, start):
        key = self._pick(data, ("held", "confirmed"))
        if key is None:
            return
        b = self.model[key]
        resp = self.api.post(
            f"/v1/bookings/{key}/reschedule",
            self.customers[b[0]],
            {"slot_id": str(self.salon["slots"][(b[1], start)])},
        )
        if start == b[2]:
            assert resp.status_code == 200
        elif self._free(b[1], start, exclude=key):
            assert resp.status_code == 200, resp.text
            b[2] = start
        else:
            assert resp.status_code == 409, resp.text

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def expire(self, data):
        from salon.bookings import expire_due_holds

        key = self._pick(data, ("held",))
        if key is None:
            return
        with self.container.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE scheduler.bookings SET hold_expires_at = now()"
                    " - interval '1 second' WHERE id = :id"
                ),
                {"id": key},
            )
        with self.container.sessions.begin() as session:
            expire_due_holds(session, batch=100)
        self.model[key][3] = "expired"

    @invariant()
    def database_agrees_and_never_overlaps(self):
        with self.container.engine.connect() as conn:
            assert conn.execute(OVERLAPS, {"loc": self.salon["location"]}).scalar() == 0
            rows = dict(
                conn.execute(
                    text(
                        "SELECT id::text, status FROM scheduler.bookings WHERE location_id = :loc"
                    ),
                    {"loc": self.salon["location"]},
                ).all()
            )
        assert rows == {k: b[3] for k, b in self.model.items()}


def test_random_booking_histories_match_the_model(api, container, settings, tenant, worker):
    Bookings.api, Bookings.container = api, container
    Bookings.settings_, Bookings.tenant = settings, tenant
    run_state_machine_as_test(
        Bookings,
        settings=settings_for_machine(),
    )


def settings_for_machine():
    return settings(
        max_examples=8,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
