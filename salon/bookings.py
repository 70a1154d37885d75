"""Bookings: hold -> confirm -> cancel / reschedule (design.md "Public API", issue 5).

Each operation runs inside the write actor's one transaction. Writes that take or free a
stylist's time take that stylist's advisory lock first (`salon.locks`); the exclusion
constraint `bookings_no_overlap` remains the last word, and its violation is a 409 (the write
path maps it). Every state change writes an outbox event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, cast, func, select, text, update
from sqlalchemy.orm import Session

from models.tables import Booking, Location, OutboxEvent, SlotInstance
from salon.auth import STAFF_ROLES, Principal
from salon.encoding import jsonable
from salon.errors import Conflict, DomainError, InvalidInput, NotFound, SlotUnavailable
from salon.locks import CUSTOMER, LOCK_SQL, STYLIST, lock_stylists
from salon.ports import Announcer
from salon.versions import TimeChange, bump_versions
from salon.writes import WriteContext, WriteOutcome

LIVE = ("held", "confirmed")


class HoldExpired(Conflict):
    slug, title = "hold-expired", "Hold expired"


class HoldLimitReached(Conflict):
    slug, title = "hold-limit-reached", "Too many holds"


class BookingClosed(Conflict):
    slug, title = "booking-not-changeable", "Booking cannot change"


class CancellationWindowClosed(Conflict):
    slug, title = "cancellation-window-closed", "Too late to cancel"


class RescheduleWindowClosed(Conflict):
    slug, title = "reschedule-window-closed", "Too late to move"


def hold_lapsed(b: Booking, now: dt.datetime) -> bool:
    """A hold past its expiry counts as expired everywhere, before the sweep marks it."""
    return b.status == "held" and b.hold_expires_at is not None and b.hold_expires_at <= now


def status_at(b: Booking, now: dt.datetime) -> str:
    """The status a reader is shown: a lapsed hold is `expired` (the sweep only catches up)."""
    return "expired" if hold_lapsed(b, now) else b.status


def booking_view(b: Booking, now: dt.datetime | None = None) -> dict[str, Any]:
    """The booking as clients see it; with `now` (a read), a lapsed hold shows as expired."""
    service_end = (
        b.start_at + dt.timedelta(minutes=b.service_minutes) if b.service_minutes else b.end_at
    )
    status = b.status if now is None else status_at(b, now)
    return {
        "id": b.id,
        "booking_id": b.id,
        "status": status,
        "slot_id": b.slot_id,
        "service_id": b.service_id,
        "stylist_id": b.stylist_id,
        "location_id": b.location_id,
        "start_at": b.start_at,
        "end_at": service_end,
        "occupied_until": b.end_at,
        "hold_expires_at": b.hold_expires_at if status == "held" else None,
        "customer": {"name": b.customer_name, "phone": b.customer_phone, "email": b.customer_email},
        "notes": b.notes,
        "source": b.source,
        "created_at": b.created_at,
        "confirmed_at": b.confirmed_at,
        "cancelled_at": b.cancelled_at,
        "cancel_reason": b.cancel_reason,
    }


def _event(session: Session, topic: str, b: Booking, request_id: str | None) -> None:
    session.add(
        OutboxEvent(
            topic=topic,
            aggregate_id=b.id,
            payload=jsonable(booking_view(b)),
            request_id=request_id,
        )
    )


def _now(session: Session) -> dt.datetime:
    # The database's clock decides expiry, so every process agrees on "now".
    value: dt.datetime = session.execute(select(func.now())).scalar_one()
    return value


# --- the fit check of a hold or a move, in one statement -----------------------------------

FIT_AT = """
SELECT
    loc.id IS NOT NULL AS location_found,
    svc.id IS NOT NULL AS service_found,
    who.minutes,
    who.minutes + svc.buffer_minutes AS need,
    now() AS now,
    -- The rule of `fits`: inside the bookable window, the stylist's open slots at this
    -- location cover [start, start + need) without a gap (slots never overlap, so the covered
    -- seconds add up), and no live booking or unexpired hold of the stylist overlaps it.
    who.minutes IS NOT NULL
    AND CAST(:start AS timestamptz) >= now() + make_interval(mins => :notice_minutes)
    AND CAST(:start AS timestamptz) <= now() + make_interval(secs => 86400 * :horizon_days)
    AND (
        SELECT coalesce(sum(extract(epoch FROM least(sl.end_at, fit.end_at) - sl.start_at)), 0)
        FROM scheduler.slot_instances sl
        WHERE sl.stylist_id = :stylist AND sl.location_id = :location AND sl.status = 'open'
          AND sl.start_at >= :start AND sl.start_at < fit.end_at
    ) = 60 * (who.minutes + svc.buffer_minutes)
    AND NOT EXISTS (
        SELECT 1 FROM scheduler.bookings b
        WHERE b.stylist_id = :stylist AND b.status IN ('held', 'confirmed')
          AND (b.status = 'confirmed' OR b.hold_expires_at > now())
          AND b.start_at < fit.end_at AND b.end_at > :start
          -- The same overlap as a range, so the exclusion constraint's GiST index finds it
          -- (stylist and time) instead of walking every booking the stylist ever had.
          AND tstzrange(b.start_at, b.end_at, '[)')
              && tstzrange(CAST(:start AS timestamptz), fit.end_at, '[)')
          AND b.id IS DISTINCT FROM CAST(:exclude AS uuid)
    ) AS fits
FROM (SELECT 1) one
-- `offer`: an active location; an active service of that location; the stylist active and
-- working there, and either the service is open to all or names them (their own minutes).
LEFT JOIN scheduler.locations loc ON loc.id = :location AND loc.active
LEFT JOIN scheduler.services svc
    ON svc.id = :service AND svc.active AND svc.location_id = loc.id
LEFT JOIN LATERAL (
    SELECT coalesce(ss.duration_minutes, svc.duration_minutes) AS minutes
    FROM scheduler.stylists st
    JOIN scheduler.stylist_locations stl
        ON stl.stylist_id = st.id AND stl.location_id = loc.id
    LEFT JOIN scheduler.service_stylists ss
        ON ss.service_id = svc.id AND ss.stylist_id = st.id
    WHERE st.id = :stylist AND st.active
      AND (ss.stylist_id IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM scheduler.service_stylists x WHERE x.service_id = svc.id))
) who ON svc.id IS NOT NULL
CROSS JOIN LATERAL (
    SELECT CAST(:start AS timestamptz)
        + make_interval(mins => who.minutes + svc.buffer_minutes) AS end_at
) fit
"""


@dataclass(frozen=True)
class FitCheck:
    """One start checked for a hold: the catalogue's answer (`offer`) and the rule of `fits`."""

    location_found: bool
    service_found: bool
    minutes: int | None  # None: the stylist does not offer the service here
    need: int | None
    now: dt.datetime
    fits: bool

    @classmethod
    def of(cls, row: Any) -> FitCheck:
        return cls(
            bool(row.location_found),
            bool(row.service_found),
            row.minutes,
            row.need,
            row.now,
            bool(row.fits),
        )

    def not_offered(
        self, location_id: uuid.UUID, service_id: uuid.UUID, stylist_id: uuid.UUID
    ) -> str | None:
        """What `offer` would refuse with (its NotFound detail), or None."""
        if not self.location_found:
            return f"location {location_id} not found"
        if not self.service_found:
            return f"service {service_id} not found at this location"
        if self.minutes is None:
            return f"stylist {stylist_id} does not offer this service here"
        return None


def fit_params(
    location_id: uuid.UUID,
    service_id: uuid.UUID,
    stylist_id: uuid.UUID,
    start: dt.datetime,
    notice_minutes: int,
    horizon_days: int,
    exclude: uuid.UUID | None = None,
) -> dict[str, object]:
    return {
        "location": location_id,
        "service": service_id,
        "stylist": stylist_id,
        "start": start,
        "notice_minutes": notice_minutes,
        "horizon_days": horizon_days,
        "exclude": exclude,
    }


def fit_check(session: Session, params: dict[str, object]) -> FitCheck:
    """`offer` plus `fits` for one stylist at one start, in one statement (what a hold runs);
    the window is read from the database's clock, as a hold's `now()` is."""
    return FitCheck.of(session.execute(text(FIT_AT), params).one())


# The customer's unexpired holds (the hold limit; 0 without a customer), whether stale holds
# lie over the time, and the fit check: one read-only statement, so a refusal leaves nothing
# to undo.
_CHECK = text(
    """
SELECT f.*,
    -- Through the customer's index: `hold_expires_at > now()` written so that the index of
    -- all live holds cannot serve it (with stale statistics the planner walked every hold).
    (SELECT count(*) FROM scheduler.bookings
     WHERE user_id = :user AND status = 'held'
       AND hold_expires_at - now() > interval '0') AS held,
    EXISTS ("""
    + """SELECT 1"""
    + """ FROM scheduler.bookings WHERE {stale}) AS stale
FROM ("""
    + FIT_AT
    + """) f
"""
)

# Stale holds over the time are expired before the booking goes in, in the same transaction:
# an expired hold blocks nobody (the fit check ignores it) but would trip the exclusion
# constraint. Reaches a day past the start, as the sweep would.
_STALE = """
    stylist_id = :stylist AND status = 'held' AND hold_expires_at <= now()
    AND start_at < :expire_until AND end_at > :start
    AND tstzrange(start_at, end_at, '[)')
        && tstzrange(CAST(:start AS timestamptz), CAST(:expire_until AS timestamptz), '[)')
"""
_CHECK = text(_CHECK.text.replace("{stale}", _STALE))
_EXPIRE_STALE = text(
    "UPDATE scheduler.bookings SET status = 'expired', updated_at = now()"
    f" WHERE {_STALE} RETURNING id"
)


@dataclass(frozen=True)
class _Place:
    """The slot a hold or a move asks for."""

    id: uuid.UUID
    location_id: uuid.UUID
    stylist_id: uuid.UUID
    start_at: dt.datetime


def _check_then_expire(
    session: Session,
    ctx: WriteContext,
    slot: _Place,
    service_id: uuid.UUID,
    *,
    exclude: uuid.UUID | None = None,
    customer: uuid.UUID | None = None,
) -> tuple[int, int]:
    """Check the hold limit (with `customer`) and the fit, raising refusals before anything is
    written; then expire the stale holds over the time, if any (rare), with their events.
    Returns the service's minutes and the minutes the booking occupies."""
    s = ctx.settings
    params = fit_params(
        slot.location_id,
        service_id,
        slot.stylist_id,
        slot.start_at,
        s.min_notice_minutes,
        s.booking_horizon_days,
        exclude,
    )
    params["expire_until"] = slot.start_at + dt.timedelta(hours=24)
    params["user"] = customer
    row = session.execute(_CHECK, params).one()
    if customer is not None and row.held >= s.max_holds_per_customer:
        raise HoldLimitReached(
            f"at most {s.max_holds_per_customer} holds at once: confirm or cancel one"
        )
    minutes, need = _require_fit(FitCheck.of(row), slot, service_id)
    if row.stale:
        expired = session.execute(_EXPIRE_STALE, params).scalars().all()
        _expired_events(session, list(expired), ctx.request_id)
    return minutes, need


def _require_fit(check: FitCheck, slot: _Place, service_id: uuid.UUID) -> tuple[int, int]:
    """The service fits at the slot's start (same rule as availability): its minutes, need."""
    refused = check.not_offered(slot.location_id, service_id, slot.stylist_id)
    if refused is not None:
        raise InvalidInput(
            "this service cannot be booked at that slot",
            errors=[{"field": "service_id", "message": refused}],
        )
    if not check.fits or check.minutes is None or check.need is None:
        raise SlotUnavailable("that time is no longer available for this service")
    return check.minutes, check.need


def _expired_events(session: Session, ids: list[uuid.UUID], rid: str | None) -> None:
    """`booking.expired` for the stale holds just expired (rare: the sweep usually came first)."""
    if ids:
        for b in session.scalars(select(Booking).where(Booking.id.in_(ids))):
            _event(session, "booking.expired", b, rid)
        session.flush()  # before the change's own event, as they happened


def _slot(session: Session, slot_id: uuid.UUID) -> SlotInstance:
    slot = session.get(SlotInstance, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id} not found")
    return slot


def _check_owner(principal: Principal, b: Booking, booking_id: uuid.UUID) -> None:
    # Someone else's booking is "not found": ids cannot be probed.
    if principal.role in STAFF_ROLES:
        if b.biz_entity_id != principal.biz:
            raise NotFound(f"booking {booking_id} not found")
    elif b.user_id != principal.sub:
        raise NotFound(f"booking {booking_id} not found")


def own_booking(
    session: Session,
    principal: Principal,
    booking_id: uuid.UUID,
    *,
    for_update: bool = False,
    moving_to: uuid.UUID | None = None,
) -> Booking:
    """The principal's booking. `for_update`: its row locked, after its stylist's advisory
    lock (and the stylist of the slot `moving_to`, sorted): a change to a booking recounts
    the stylists' free runs under those locks (migration 0007), so every writer takes them
    before any row, as a hold does."""
    query = select(Booking).where(Booking.id == booking_id)
    locked: list[uuid.UUID] = []
    if for_update:
        locked = list(session.scalars(_STYLISTS_OF, {"id": booking_id, "slot": moving_to}))
        lock_stylists(session, locked)
        query = query.with_for_update()
    b = session.scalars(query).one_or_none()
    if b is None:
        raise NotFound(f"booking {booking_id} not found")
    _check_owner(principal, b, booking_id)
    if for_update and b.stylist_id not in locked:
        # Moved to another stylist between the two statements (a concurrent reschedule of
        # this booking): that lock comes after the row's. Rare; at worst a deadlock, which
        # PostgreSQL breaks and the write machinery retries.
        lock_stylists(session, [b.stylist_id])
    return b


# The stylists whose locks a change to a booking needs: its own, and a new slot's.
_STYLISTS_OF = text(
    "SELECT stylist_id FROM scheduler.bookings WHERE id = :id"
    " UNION SELECT stylist_id FROM scheduler.slot_instances WHERE id = :slot"
)

_STYLIST_LOCK = LOCK_SQL.format(key=":stylist_prefix || CAST(stylist_id AS text)")

# A confirm may change its stylist's free runs, whose trigger takes the stylist's lock
# (migration 0007): taken here first, in the statement that locks the row (PostgreSQL
# evaluates the select list before it waits for the row), so the order is the hold's:
# stylist, then rows. (If the booking was moved to another stylist meanwhile, the list is
# evaluated again on the new row, after the row lock: the rare case `own_booking` describes.)
_LOCK_BOOKING = text(
    f"SELECT {', '.join(c.name for c in Booking.__table__.c)}, now() AS now_,"
    f" {_STYLIST_LOCK} AS stylist_locked"
    " FROM scheduler.bookings WHERE id = :id FOR UPDATE"
)


def _own_booking_locked(
    session: Session, principal: Principal, booking_id: uuid.UUID
) -> tuple[Booking, dt.datetime]:
    """The booking row locked, as a detached `Booking` (changes go through Core, not the
    unit of work), and the database clock of this transaction: one statement."""
    row = session.execute(
        _LOCK_BOOKING, {"id": booking_id, "stylist_prefix": STYLIST}
    ).one_or_none()
    if row is None:
        raise NotFound(f"booking {booking_id} not found")
    values = dict(row._mapping)
    now: dt.datetime = values.pop("now_")
    values.pop("stylist_locked")
    b = Booking(**values)
    _check_owner(principal, b, booking_id)
    return b, now


def _outcome(b: Booking, status: int = 200, location: str | None = None) -> WriteOutcome:
    return WriteOutcome(status, booking_view(b), location, touched_times=(_time_of(b),))


def _time_of(b: Booking) -> TimeChange:
    return (b.stylist_id, b.start_at, b.end_at)


def _payload(b: Booking) -> str:
    return json.dumps(jsonable(booking_view(b)), separators=(",", ":"))


_SLOT_LOCKED = text(
    f"""
SELECT s.id, s.location_id, s.stylist_id, s.start_at, l.biz_entity_id, now() AS now,
    -- The customer's lock first (hold limit), then the stylist's (their time): evaluated in
    -- this order, the order of sorted keys (`salon.locks`).
    {LOCK_SQL.format(key=":customer_key")} AS customer_locked,
    {LOCK_SQL.format(key=":stylist_prefix || CAST(s.stylist_id AS text)")} AS stylist_locked
FROM scheduler.slot_instances s
JOIN scheduler.locations l ON l.id = s.location_id
WHERE s.id = :slot
"""
)

# The booking and its `booking.held` event, one statement. Every value is computed here from
# this transaction's `now()` (what the column defaults would give), so the view returned and
# stored in the outbox is exactly the row: no read-back.
_INSERT_HELD = text(
    """
WITH held AS (
    INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id, service_id,
        slot_id, user_id, customer_name, customer_phone, customer_email, notes, source,
        consent, status, start_at, end_at, service_minutes, hold_expires_at, created_at,
        updated_at)
    VALUES (:id, :biz_entity_id, :location_id, :stylist_id, :service_id, :slot_id, :user_id,
        :customer_name, :customer_phone, :customer_email, :notes, :source,
        CAST(:consent AS jsonb), :status, :start_at, :end_at, :service_minutes,
        :hold_expires_at, :created_at, :updated_at)
    RETURNING id
)
INSERT INTO scheduler.outbox_events (topic, aggregate_id, payload, request_id)
SELECT 'booking.held', id, CAST(:payload AS jsonb), :request_id FROM held
"""
)


def hold(session: Session, ctx: WriteContext) -> WriteOutcome:
    """Three statements: the slot with both locks taken (and the clock); the customer's hold
    count and the fit check; the booking inserted with its outbox event (plus the expiry of
    stale holds over the time, when there are any). Every refusal is raised before anything is
    written, so the operation needs no savepoint (`operation(..., savepoint=False)`)."""
    body = ctx.body
    slot_id = uuid.UUID(body["slot_id"])
    service_id = uuid.UUID(body["service_id"])
    found = session.execute(
        _SLOT_LOCKED,
        {
            "slot": slot_id,
            "customer_key": f"{CUSTOMER}{ctx.principal.sub}",
            "stylist_prefix": STYLIST,
        },
    ).one_or_none()
    if found is None:
        raise NotFound(f"slot {slot_id} not found")
    slot = _Place(found.id, found.location_id, found.stylist_id, found.start_at)
    minutes, need = _check_then_expire(session, ctx, slot, service_id, customer=ctx.principal.sub)
    customer = body["customer"]
    now = found.now
    b = Booking(
        id=ctx.write_id,
        biz_entity_id=found.biz_entity_id,
        location_id=slot.location_id,
        stylist_id=slot.stylist_id,
        service_id=service_id,
        slot_id=slot.id,
        user_id=ctx.principal.sub,
        customer_name=customer["name"],
        customer_phone=customer["phone"],
        customer_email=customer.get("email"),
        notes=body.get("notes"),
        source=body.get("source"),
        consent=body.get("consent"),
        status="held",
        start_at=slot.start_at,
        end_at=slot.start_at + dt.timedelta(minutes=need),
        service_minutes=minutes,
        hold_expires_at=now + dt.timedelta(seconds=ctx.settings.hold_ttl_seconds),
        created_at=now,
        updated_at=now,
    )
    view = booking_view(b)
    session.execute(
        _INSERT_HELD,
        {
            **{c: getattr(b, c) for c in _HELD_COLUMNS},
            # None is stored as JSON null, as the ORM's JSONB column type does.
            "consent": json.dumps(b.consent),
            "payload": json.dumps(jsonable(view), separators=(",", ":")),
            "request_id": ctx.request_id,
        },
    )
    return WriteOutcome(201, view, f"/v1/bookings/{b.id}", touched_times=(_time_of(b),))


_HELD_COLUMNS = (
    "id",
    "biz_entity_id",
    "location_id",
    "stylist_id",
    "service_id",
    "slot_id",
    "user_id",
    "customer_name",
    "customer_phone",
    "customer_email",
    "notes",
    "source",
    "status",
    "start_at",
    "end_at",
    "service_minutes",
    "hold_expires_at",
    "created_at",
    "updated_at",
)


def _check_fit_after_expiry(
    session: Session,
    ctx: WriteContext,
    slot: SlotInstance,
    service_id: uuid.UUID,
    exclude: uuid.UUID | None = None,
) -> tuple[int, int]:
    place = _Place(slot.id, slot.location_id, slot.stylist_id, slot.start_at)
    return _check_then_expire(session, ctx, place, service_id, exclude=exclude)


# A confirm's change and its event, one statement (the values computed from the locked row
# and this transaction's clock, as `_INSERT_HELD`).
_CONFIRM_OR_EXPIRE = text(
    """
WITH changed AS (
    UPDATE scheduler.bookings
    SET status = :status, confirmed_at = :confirmed_at, updated_at = :updated_at
    WHERE id = :id
    RETURNING id
)
INSERT INTO scheduler.outbox_events (topic, aggregate_id, payload, request_id)
SELECT :topic, id, CAST(:payload AS jsonb), :request_id FROM changed
"""
)


def _confirm_or_expire(session: Session, b: Booking, topic: str, rid: str | None) -> None:
    session.execute(
        _CONFIRM_OR_EXPIRE,
        {
            "id": b.id,
            "status": b.status,
            "confirmed_at": b.confirmed_at,
            "updated_at": b.updated_at,
            "topic": topic,
            "payload": _payload(b),
            "request_id": rid,
        },
    )


def confirm(session: Session, ctx: WriteContext) -> WriteOutcome:
    booking_id = uuid.UUID(ctx.params["booking_id"])
    b, now = _own_booking_locked(session, ctx.principal, booking_id)
    if b.status == "confirmed":
        return _outcome(b)
    if b.status == "expired":
        # Whoever noticed first (the sweep, or another confirm), the answer is the same.
        raise HoldExpired("the hold expired before it was confirmed; choose a time again")
    if b.status != "held":
        raise BookingClosed(f"booking is {b.status}")
    if hold_lapsed(b, now):
        # Exactly one outcome at the edge: the database clock, under the row lock, says expired.
        b.status, b.updated_at = "expired", now
        _confirm_or_expire(session, b, "booking.expired", ctx.request_id)
        return _refused_after_expiry(
            b, HoldExpired("the hold expired before it was confirmed; choose a time again")
        )
    b.status, b.confirmed_at, b.updated_at = "confirmed", now, now
    _confirm_or_expire(session, b, "booking.confirmed", ctx.request_id)
    return _outcome(b)


def _expire_lapsed(
    session: Session, ctx: WriteContext, b: Booking, now: dt.datetime, error: DomainError
) -> WriteOutcome:
    """Mark a hold (an ORM row, locked) found past its expiry as the sweep would, with its
    event, and refuse the change with `error`: whatever a change asked for, a lapsed hold
    answers as an expired one does (one outcome, swept or not). The refusal is returned, not
    raised, so the marking is kept."""
    b.status, b.updated_at = "expired", now
    session.flush()
    _event(session, "booking.expired", b, ctx.request_id)
    return _refused_after_expiry(b, error)


def _refused_after_expiry(b: Booking, error: DomainError) -> WriteOutcome:
    return WriteOutcome(error.status, error.problem(), touched_times=(_time_of(b),))


def _too_late_for_customer(ctx: WriteContext, b: Booking, now: dt.datetime, *, staff: bool) -> bool:
    """A customer frees a confirmed booking's time only up to the cut-off before its start."""
    cutoff = dt.timedelta(hours=ctx.settings.cancel_cutoff_hours)
    return not staff and b.status == "confirmed" and b.start_at - now < cutoff


def _cancel(session: Session, ctx: WriteContext, b: Booking, *, staff: bool) -> WriteOutcome:
    if b.status == "cancelled":
        return _outcome(b)
    if b.status not in LIVE:
        raise BookingClosed(f"booking is {b.status}")
    now = _now(session)
    if hold_lapsed(b, now):
        return _expire_lapsed(session, ctx, b, now, BookingClosed("booking is expired"))
    if _too_late_for_customer(ctx, b, now, staff=staff):
        raise CancellationWindowClosed(
            f"customers can cancel up to {ctx.settings.cancel_cutoff_hours} h before the start;"
            " please call the salon"
        )
    b.status, b.cancelled_at, b.updated_at = "cancelled", now, now
    b.cancel_reason = ctx.body.get("reason")
    b.cancelled_by = ctx.principal.key
    session.flush()
    _event(session, "booking.cancelled", b, ctx.request_id)
    return _outcome(b)


def cancel(session: Session, ctx: WriteContext) -> WriteOutcome:
    b = _named_booking(session, ctx)
    return _cancel(session, ctx, b, staff=ctx.principal.role in STAFF_ROLES)


def _named_booking(
    session: Session, ctx: WriteContext, *, moving_to: uuid.UUID | None = None
) -> Booking:
    """The booking the request names, locked for a change (see `own_booking`)."""
    booking_id = uuid.UUID(ctx.params["booking_id"])
    return own_booking(session, ctx.principal, booking_id, for_update=True, moving_to=moving_to)


def _reschedule(
    session: Session, ctx: WriteContext, b: Booking, new_slot_id: uuid.UUID, *, staff: bool
) -> WriteOutcome:
    if b.status == "expired":
        raise HoldExpired("the hold expired; choose a time again")
    if b.status not in LIVE:
        raise BookingClosed(f"booking is {b.status}")
    now = _now(session)
    if hold_lapsed(b, now):
        return _expire_lapsed(
            session, ctx, b, now, HoldExpired("the hold expired; choose a time again")
        )
    slot = _slot(session, new_slot_id)
    location = session.get(Location, slot.location_id)
    if location is None or location.biz_entity_id != b.biz_entity_id:
        raise NotFound(f"slot {new_slot_id} not found")
    if slot.id == b.slot_id:
        return _outcome(b)  # already there: a repeat, whatever the cut-off
    # Moving frees the old time as a cancel does: the customer's cut-off applies to it too
    # (and a booking that has started cannot be moved by its customer at all).
    if _too_late_for_customer(ctx, b, now, staff=staff):
        raise RescheduleWindowClosed(
            f"customers can move a booking up to {ctx.settings.cancel_cutoff_hours} h before"
            " its start; please call the salon"
        )
    if slot.location_id != b.location_id:
        # A service belongs to one location: the booking cannot move to another one.
        raise InvalidInput(
            "a booking can move only to a slot at its own location",
            errors=[{"field": "slot_id", "message": "the slot is at another location"}],
        )
    # Both stylists' locks are held already (`_named_booking`, moving_to=the slot).
    # The old time stays taken until this same transaction moves it: both, or nothing.
    minutes, need = _check_fit_after_expiry(session, ctx, slot, b.service_id, b.id)
    old_time = _time_of(b)
    b.rescheduled_from = b.start_at
    b.slot_id, b.stylist_id, b.location_id = slot.id, slot.stylist_id, slot.location_id
    b.start_at, b.end_at = slot.start_at, slot.start_at + dt.timedelta(minutes=need)
    b.service_minutes, b.updated_at = minutes, func.now()
    session.flush()
    session.refresh(b)
    _event(session, "booking.rescheduled", b, ctx.request_id)
    # Both stylists' time changed: the old one's was freed, the new one's taken.
    return WriteOutcome(200, booking_view(b), touched_times=(old_time, _time_of(b)))


def reschedule(session: Session, ctx: WriteContext) -> WriteOutcome:
    slot_id = uuid.UUID(ctx.body["slot_id"])
    b = _named_booking(session, ctx, moving_to=slot_id)
    return _reschedule(session, ctx, b, slot_id, staff=ctx.principal.role in STAFF_ROLES)


def admin_update(session: Session, ctx: WriteContext) -> WriteOutcome:
    action = ctx.body["action"]
    new_slot = uuid.UUID(ctx.body["new_slot_id"]) if action == "reschedule" else None
    b = _named_booking(session, ctx, moving_to=new_slot)
    if action == "cancel":
        return _cancel(session, ctx, b, staff=True)
    if action == "reschedule" and new_slot is not None:
        return _reschedule(session, ctx, b, new_slot, staff=True)
    if action == "no_show":
        now = _now(session)
        if hold_lapsed(b, now):
            return _expire_lapsed(session, ctx, b, now, BookingClosed("booking is expired"))
        if b.status != "confirmed":
            raise BookingClosed(f"only a confirmed booking can be a no-show (it is {b.status})")
        if b.start_at > now:
            raise BookingClosed("a booking cannot be a no-show before it starts")
        b.status, b.updated_at = "no_show", func.now()
        session.flush()
        session.refresh(b)
        _event(session, "booking.no_show", b, ctx.request_id)
        return _outcome(b)
    raise DomainError(f"unknown action {action}")


def sweep_lapsed_holds(container: Announcer, batch: int = 500) -> int:
    """The scheduler's sweep: every hold past its expiry marked expired, with its event, one
    batch per transaction (a long backlog never holds locks for long); holds being confirmed
    or changed right now are skipped and left to their write (which expires them itself).
    Returns how many were expired."""
    total = 0
    while True:
        with container.sessions.begin() as session:
            expired = expire_due_holds(session, batch=batch)
            freed = [(b.stylist_id, b.start_at, b.end_at) for b in expired]
        bump_versions(container, [], freed)
        total += len(expired)
        if len(expired) < batch:
            return total


def expire_due_holds(session: Session, batch: int) -> list[Booking]:
    """Mark a batch of holds past their expiry; SKIP LOCKED leaves rows being confirmed."""
    due = (
        select(Booking.id)
        .where(Booking.status == "held", Booking.hold_expires_at <= func.now())
        .order_by(Booking.hold_expires_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    expired = list(
        session.scalars(
            update(Booking)
            .where(Booking.id.in_(due))
            .values(status="expired", updated_at=func.now())
            .returning(Booking)
        )
    )
    for b in expired:
        _event(session, "booking.expired", b, None)
    return expired


def list_bookings(
    session: Session,
    principal: Principal,
    *,
    status: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    location_id: uuid.UUID | None,
    stylist_id: uuid.UUID | None,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(Booking)
    if principal.role in STAFF_ROLES:
        query = query.where(Booking.biz_entity_id == principal.biz)
    else:
        query = query.where(Booking.user_id == principal.sub)
    now = _now(session)
    if status == "held":
        query = query.where(Booking.status == "held", Booking.hold_expires_at > now)
    elif status == "expired":
        lapsed = (Booking.status == "held") & (Booking.hold_expires_at <= now)
        query = query.where((Booking.status == "expired") | lapsed)
    elif status:
        query = query.where(Booking.status == status)
    if date_from or date_to:
        # Dates are the location's own: a booking's date is the day its start falls on there.
        query = query.join(Location, Location.id == Booking.location_id)
        local_date = cast(func.timezone(Location.timezone, Booking.start_at), Date)
    if date_from:
        # A coarse UTC bound first (no zone is more than a day off UTC) keeps the index useful.
        since = dt.datetime.combine(date_from - dt.timedelta(days=1), dt.time(), dt.UTC)
        query = query.where(Booking.start_at >= since, local_date >= date_from)
    if date_to:
        until = dt.datetime.combine(date_to + dt.timedelta(days=2), dt.time(), dt.UTC)
        query = query.where(Booking.start_at < until, local_date <= date_to)
    if location_id:
        query = query.where(Booking.location_id == location_id)
    if stylist_id:
        query = query.where(Booking.stylist_id == stylist_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Booking.start_at, Booking.id).offset((page - 1) * page_size).limit(page_size)
    )
    return [booking_view(b, now) for b in rows], total


def read_booking(session: Session, principal: Principal, booking_id: uuid.UUID) -> dict[str, Any]:
    """`GET` of one booking: the principal's own, as of the database clock."""
    return booking_view(own_booking(session, principal, booking_id), _now(session))
