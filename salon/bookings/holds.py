"""Holds: a customer's hold of a start (or staff's booking on a customer's behalf), its
confirmation, and the expiry of lapsed holds (design.md "Public API", "Admin API").
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from models.tables import Booking
from salon.bookings.customer import customer_columns
from salon.bookings.fit import Place, check_then_expire
from salon.bookings.model import (
    BookingClosed,
    HoldExpired,
    booking_view,
    event_payload,
    hold_lapsed,
    outcome_of,
    record_event,
    time_of,
)
from salon.bookings.reads import own_booking_locked
from salon.encoding import jsonable
from salon.errors import DomainError, NotFound
from salon.infra.locks import CUSTOMER, LOCK_SQL, STYLIST
from salon.infra.pii import PiiCodec, mask_paths, pii_codec
from salon.ports import Announcer
from salon.public_times.versions import bump_versions
from salon.write_path.model import WriteContext, WriteOutcome

_SLOT_LOCKED = text(
    f"""
SELECT s.id, s.location_id, s.stylist_id, s.start_at, l.biz_entity_id, now() AS now,
    -- The customer's lock first (hold limit), then the stylist's (their time): evaluated in
    -- this order, the order of sorted keys (`salon.infra.locks`).
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
        slot_id, user_id, customer_name, customer_phone, customer_email, notes, pii_kid,
        customer_phone_hash, customer_email_hash, source, consent, status, start_at, end_at,
        service_minutes, hold_expires_at, confirmed_at, created_at, updated_at)
    VALUES (:id, :biz_entity_id, :location_id, :stylist_id, :service_id, :slot_id, :user_id,
        :customer_name, :customer_phone, :customer_email, :notes, :pii_kid,
        :customer_phone_hash, :customer_email_hash, :source, CAST(:consent AS jsonb), :status,
        :start_at, :end_at, :service_minutes, :hold_expires_at, :confirmed_at, :created_at,
        :updated_at)
    RETURNING id
)
INSERT INTO scheduler.outbox_events (topic, aggregate_id, payload, request_id)
SELECT :topic, id, CAST(:payload AS jsonb), :request_id FROM held
"""
)


def hold(session: Session, ctx: WriteContext) -> WriteOutcome:
    """A customer's hold: within their hold limit and the minimum notice."""
    return _book(
        session,
        ctx,
        user_id=ctx.principal.sub,
        notice_minutes=ctx.settings.min_notice_minutes,
        brand=None,
        confirm=False,
        location="/v1/bookings",
    )


def staff_book(session: Session, ctx: WriteContext) -> WriteOutcome:
    """Staff book a named customer (a walk-in, a phone call) at a slot of their own brand: a
    hold, or confirmed at once (`confirm`). No hold limit applies (the booking belongs to no
    customer account), and the minimum notice is skipped where the salon allows it
    (`STAFF_SKIP_NOTICE`): never a start in the past."""
    s = ctx.settings
    return _book(
        session,
        ctx,
        user_id=None,
        notice_minutes=0 if s.staff_skip_notice else s.min_notice_minutes,
        brand=ctx.principal.biz,
        confirm=bool(ctx.body.get("confirm")),
        location="/admin/v1/bookings",
    )


def _book(
    session: Session,
    ctx: WriteContext,
    *,
    user_id: uuid.UUID | None,
    notice_minutes: int,
    brand: uuid.UUID | None,
    confirm: bool,
    location: str,
) -> WriteOutcome:
    """Three statements: the slot with both locks taken (and the clock); the customer's hold
    count and the fit check; the booking inserted with its outbox event (plus the expiry of
    stale holds over the time, when there are any). Every refusal is raised before anything is
    written, so the operation needs no savepoint (`operation(..., savepoint=False)`).
    `user_id`: the customer whose hold limit applies (None: none). `brand`: the slot must be
    this brand's (staff), else it is not found."""
    body = ctx.body
    slot_id = uuid.UUID(body["slot_id"])
    service_id = uuid.UUID(body["service_id"])
    found = session.execute(
        _SLOT_LOCKED,
        {
            "slot": slot_id,
            # Staff take the lock of their own id: it serializes one desk's bookings only.
            "customer_key": f"{CUSTOMER}{ctx.principal.sub}",
            "stylist_prefix": STYLIST,
        },
    ).one_or_none()
    if found is None or (brand is not None and found.biz_entity_id != brand):
        raise NotFound(f"slot {slot_id} not found")
    slot = Place(found.id, found.location_id, found.stylist_id, found.start_at)
    minutes, need = check_then_expire(
        session, ctx, slot, service_id, customer=user_id, notice_minutes=notice_minutes
    )
    customer = body["customer"]
    now = found.now
    pii = ctx.pii
    expires = None if confirm else now + dt.timedelta(seconds=ctx.settings.hold_ttl_seconds)
    b = Booking(
        id=ctx.write_id,
        biz_entity_id=found.biz_entity_id,
        location_id=slot.location_id,
        stylist_id=slot.stylist_id,
        service_id=service_id,
        slot_id=slot.id,
        user_id=user_id,
        **customer_columns(
            pii,
            ctx.write_id,
            name=customer["name"],
            phone=customer["phone"],
            email=customer.get("email"),
            notes=body.get("notes"),
        ),
        source=body.get("source"),
        consent=body.get("consent"),
        status="confirmed" if confirm else "held",
        start_at=slot.start_at,
        end_at=slot.start_at + dt.timedelta(minutes=need),
        service_minutes=minutes,
        hold_expires_at=expires,
        confirmed_at=now if confirm else None,
        created_at=now,
        updated_at=now,
    )
    # Just sealed: its clear values are at hand, not opened again (a hold's hot path).
    clear = {
        "customer_phone": customer["phone"],
        "customer_email": customer.get("email"),
        "notes": body.get("notes"),
    }
    view = booking_view(b, pii, clear=clear)
    session.execute(
        _INSERT_HELD,
        {
            **{c: getattr(b, c) for c in _HELD_COLUMNS},
            # None is stored as JSON null, as the ORM's JSONB column type does.
            "consent": json.dumps(b.consent),
            "topic": "booking.confirmed" if confirm else "booking.held",
            "payload": json.dumps(mask_paths(jsonable(view)), separators=(",", ":")),
            "request_id": ctx.request_id,
        },
    )
    return WriteOutcome(201, view, f"{location}/{b.id}", touched_times=(time_of(b),))


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
    "pii_kid",
    "customer_phone_hash",
    "customer_email_hash",
    "source",
    "status",
    "start_at",
    "end_at",
    "service_minutes",
    "hold_expires_at",
    "confirmed_at",
    "created_at",
    "updated_at",
)


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


def _confirm_or_expire(
    session: Session, b: Booking, topic: str, rid: str | None, pii: PiiCodec
) -> None:
    session.execute(
        _CONFIRM_OR_EXPIRE,
        {
            "id": b.id,
            "status": b.status,
            "confirmed_at": b.confirmed_at,
            "updated_at": b.updated_at,
            "topic": topic,
            "payload": event_payload(b, pii),
            "request_id": rid,
        },
    )


def confirm(session: Session, ctx: WriteContext) -> WriteOutcome:
    booking_id = uuid.UUID(ctx.params["booking_id"])
    b, now = own_booking_locked(session, ctx.principal, booking_id)
    if b.status == "confirmed":
        return outcome_of(b, ctx.pii)
    if b.status == "expired":
        # Whoever noticed first (the sweep, or another confirm), the answer is the same.
        raise HoldExpired("the hold expired before it was confirmed; choose a time again")
    if b.status != "held":
        raise BookingClosed(f"booking is {b.status}")
    if hold_lapsed(b, now):
        # Exactly one outcome at the edge: the database clock, under the row lock, says expired.
        b.status, b.updated_at = "expired", now
        _confirm_or_expire(session, b, "booking.expired", ctx.request_id, ctx.pii)
        return _refused_after_expiry(
            b, HoldExpired("the hold expired before it was confirmed; choose a time again")
        )
    b.status, b.confirmed_at, b.updated_at = "confirmed", now, now
    _confirm_or_expire(session, b, "booking.confirmed", ctx.request_id, ctx.pii)
    return outcome_of(b, ctx.pii)


def expire_lapsed(
    session: Session, ctx: WriteContext, b: Booking, now: dt.datetime, error: DomainError
) -> WriteOutcome:
    """Mark a hold (an ORM row, locked) found past its expiry as the sweep would, with its
    event, and refuse the change with `error`: whatever a change asked for, a lapsed hold
    answers as an expired one does (one outcome, swept or not). The refusal is returned, not
    raised, so the marking is kept."""
    b.status, b.updated_at = "expired", now
    session.flush()
    record_event(session, "booking.expired", b, ctx.request_id, ctx.pii)
    return _refused_after_expiry(b, error)


def _refused_after_expiry(b: Booking, error: DomainError) -> WriteOutcome:
    return WriteOutcome(error.status, error.problem(), touched_times=(time_of(b),))


def sweep_lapsed_holds(container: Announcer, batch: int = 500) -> int:
    """The scheduler's sweep: every hold past its expiry marked expired, with its event, one
    batch per transaction (a long backlog never holds locks for long); holds being confirmed
    or changed right now are skipped and left to their write (which expires them itself).
    Returns how many were expired."""
    total = 0
    while True:
        with container.sessions.begin() as session:
            expired = expire_due_holds(session, pii_codec(container.settings), batch=batch)
            freed = [(b.stylist_id, b.start_at, b.end_at) for b in expired]
        bump_versions(container, [], freed)
        total += len(expired)
        if len(expired) < batch:
            return total


def expire_due_holds(session: Session, pii: PiiCodec, batch: int) -> list[Booking]:
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
        record_event(session, "booking.expired", b, None, pii)
    return expired
