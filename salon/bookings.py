"""Bookings: hold -> confirm -> cancel / reschedule (design.md "Public API", issue 5).

Each operation runs inside the write actor's one transaction. Writes that take or free a
stylist's time take that stylist's advisory lock first (`salon.locks`); the exclusion
constraint `bookings_no_overlap` remains the last word, and its violation is a 409 (the write
path maps it). Every state change writes an outbox event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.tables import Booking, Location, OutboxEvent, SlotInstance
from salon.auth import STAFF_ROLES, Principal
from salon.encoding import jsonable
from salon.errors import Conflict, DomainError, InvalidInput, NotFound, SlotUnavailable
from salon.free_times import Window, fits, offer
from salon.locks import lock, lock_stylists
from salon.settings import Settings
from salon.writes import WriteContext, WriteOutcome, operation

LIVE = ("held", "confirmed")


class HoldExpired(Conflict):
    slug, title = "hold-expired", "Hold expired"


class HoldLimitReached(Conflict):
    slug, title = "hold-limit-reached", "Too many holds"


class BookingClosed(Conflict):
    slug, title = "booking-not-changeable", "Booking cannot change"


class CancellationWindowClosed(Conflict):
    slug, title = "cancellation-window-closed", "Too late to cancel"


def booking_view(b: Booking) -> dict[str, Any]:
    service_end = (
        b.start_at + dt.timedelta(minutes=b.service_minutes) if b.service_minutes else b.end_at
    )
    return {
        "booking_id": b.id,
        "status": b.status,
        "slot_id": b.slot_id,
        "service_id": b.service_id,
        "stylist_id": b.stylist_id,
        "location_id": b.location_id,
        "start_at": b.start_at,
        "end_at": service_end,
        "occupied_until": b.end_at,
        "hold_expires_at": b.hold_expires_at if b.status == "held" else None,
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


def _expire_stale_overlapping(
    session: Session, stylist_id: uuid.UUID, start: dt.datetime, end: dt.datetime, rid: str | None
) -> None:
    stale = session.scalars(
        update(Booking)
        .where(
            Booking.stylist_id == stylist_id,
            Booking.status == "held",
            Booking.hold_expires_at <= func.now(),
            Booking.start_at < end,
            Booking.end_at > start,
        )
        .values(status="expired", updated_at=func.now())
        .returning(Booking)
    ).all()
    for b in stale:
        _event(session, "booking.expired", b, rid)


def _slot(session: Session, slot_id: uuid.UUID) -> SlotInstance:
    slot = session.get(SlotInstance, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id} not found")
    return slot


def _check_fit(
    session: Session,
    settings: Settings,
    slot: SlotInstance,
    service_id: uuid.UUID,
    exclude: uuid.UUID | None = None,
) -> tuple[int, int]:
    """The service fits at the slot's start (same rule as availability): its minutes, need."""
    try:
        o = offer(session, slot.location_id, service_id, slot.stylist_id)
    except NotFound as exc:
        raise InvalidInput(
            "this service cannot be booked at that slot",
            errors=[{"field": "service_id", "message": exc.detail}],
        ) from exc
    now = _now(session)
    window = Window.from_now(now, settings.min_notice_minutes, settings.booking_horizon_days)
    if not fits(session, o, slot.stylist_id, slot.start_at, window, exclude):
        raise SlotUnavailable("that time is no longer available for this service")
    return o.durations[slot.stylist_id], o.needs[slot.stylist_id]


def own_booking(
    session: Session, principal: Principal, booking_id: uuid.UUID, *, for_update: bool = False
) -> Booking:
    query = select(Booking).where(Booking.id == booking_id)
    if for_update:
        query = query.with_for_update()
    b = session.scalars(query).one_or_none()
    # Someone else's booking is "not found": ids cannot be probed.
    if b is None:
        raise NotFound(f"booking {booking_id} not found")
    if principal.role in STAFF_ROLES:
        if b.biz_entity_id != principal.biz:
            raise NotFound(f"booking {booking_id} not found")
    elif b.user_id != principal.sub:
        raise NotFound(f"booking {booking_id} not found")
    return b


def _outcome(b: Booking, status: int = 200, location: str | None = None) -> WriteOutcome:
    return WriteOutcome(status, booking_view(b), location, touched_stylists=(b.stylist_id,))


@operation("booking.hold")
def hold(session: Session, ctx: WriteContext) -> WriteOutcome:
    body = ctx.body
    slot = _slot(session, uuid.UUID(body["slot_id"]))
    service_id = uuid.UUID(body["service_id"])
    # The customer's lock first (hold limit), then the stylist's (their time).
    lock(session, f"customer:{ctx.principal.sub}")
    lock_stylists(session, [slot.stylist_id])
    held = session.scalar(
        select(func.count()).where(
            Booking.user_id == ctx.principal.sub,
            Booking.status == "held",
            Booking.hold_expires_at > func.now(),
        )
    )
    if (held or 0) >= ctx.settings.max_holds_per_customer:
        raise HoldLimitReached(
            f"at most {ctx.settings.max_holds_per_customer} holds at once: confirm or cancel one"
        )
    location = session.get(Location, slot.location_id)
    assert location is not None
    minutes, need = _check_fit_after_expiry(session, ctx, slot, service_id)
    customer = body["customer"]
    b = Booking(
        id=ctx.write_id,
        biz_entity_id=location.biz_entity_id,
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
        hold_expires_at=func.now() + dt.timedelta(seconds=ctx.settings.hold_ttl_seconds),
    )
    session.add(b)
    session.flush()
    session.refresh(b)
    _event(session, "booking.held", b, ctx.request_id)
    return _outcome(b, 201, f"/v1/bookings/{b.id}")


def _check_fit_after_expiry(
    session: Session,
    ctx: WriteContext,
    slot: SlotInstance,
    service_id: uuid.UUID,
    exclude: uuid.UUID | None = None,
) -> tuple[int, int]:
    # Stale holds over this time go first, in this transaction: an expired hold blocks nobody.
    horizon = slot.start_at + dt.timedelta(hours=24)
    _expire_stale_overlapping(session, slot.stylist_id, slot.start_at, horizon, ctx.request_id)
    return _check_fit(session, ctx.settings, slot, service_id, exclude)


@operation("booking.confirm")
def confirm(session: Session, ctx: WriteContext) -> WriteOutcome:
    b = own_booking(session, ctx.principal, uuid.UUID(ctx.params["booking_id"]), for_update=True)
    if b.status == "confirmed":
        return _outcome(b)
    if b.status == "expired":
        # Whoever noticed first (the sweep, or another confirm), the answer is the same.
        raise HoldExpired("the hold expired before it was confirmed; choose a time again")
    if b.status != "held":
        raise BookingClosed(f"booking is {b.status}")
    now = _now(session)
    assert b.hold_expires_at is not None
    if b.hold_expires_at <= now:
        # Exactly one outcome at the edge: the database clock, under the row lock, says expired.
        b.status, b.updated_at = "expired", now
        session.flush()
        _event(session, "booking.expired", b, ctx.request_id)
        error = HoldExpired("the hold expired before it was confirmed; choose a time again")
        return WriteOutcome(error.status, error.problem(), touched_stylists=(b.stylist_id,))
    b.status, b.confirmed_at, b.updated_at = "confirmed", now, now
    session.flush()
    _event(session, "booking.confirmed", b, ctx.request_id)
    return _outcome(b)


def _cancel(session: Session, ctx: WriteContext, b: Booking, *, staff: bool) -> WriteOutcome:
    if b.status == "cancelled":
        return _outcome(b)
    if b.status not in LIVE:
        raise BookingClosed(f"booking is {b.status}")
    now = _now(session)
    cutoff = dt.timedelta(hours=ctx.settings.cancel_cutoff_hours)
    if not staff and b.status == "confirmed" and b.start_at - now < cutoff:
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


@operation("booking.cancel")
def cancel(session: Session, ctx: WriteContext) -> WriteOutcome:
    b = own_booking(session, ctx.principal, uuid.UUID(ctx.params["booking_id"]), for_update=True)
    return _cancel(session, ctx, b, staff=ctx.principal.role in STAFF_ROLES)


def _reschedule(
    session: Session, ctx: WriteContext, b: Booking, new_slot_id: uuid.UUID
) -> WriteOutcome:
    if b.status not in LIVE:
        raise BookingClosed(f"booking is {b.status}")
    slot = _slot(session, new_slot_id)
    if slot.id == b.slot_id:
        return _outcome(b)
    lock_stylists(session, [b.stylist_id, slot.stylist_id])
    if b.status == "held" and b.hold_expires_at is not None and b.hold_expires_at <= _now(session):
        raise HoldExpired("the hold expired; choose a time again")
    location = session.get(Location, slot.location_id)
    if location is None or location.biz_entity_id != b.biz_entity_id:
        raise NotFound(f"slot {new_slot_id} not found")
    # The old time stays taken until this same transaction moves it: both, or nothing.
    minutes, need = _check_fit_after_expiry(session, ctx, slot, b.service_id, b.id)
    old_stylist = b.stylist_id
    b.rescheduled_from = b.start_at
    b.slot_id, b.stylist_id, b.location_id = slot.id, slot.stylist_id, slot.location_id
    b.start_at, b.end_at = slot.start_at, slot.start_at + dt.timedelta(minutes=need)
    b.service_minutes, b.updated_at = minutes, func.now()
    session.flush()
    session.refresh(b)
    _event(session, "booking.rescheduled", b, ctx.request_id)
    # Both stylists' time changed: the old one's was freed, the new one's taken.
    return WriteOutcome(200, booking_view(b), touched_stylists=(old_stylist, b.stylist_id))


@operation("booking.reschedule")
def reschedule(session: Session, ctx: WriteContext) -> WriteOutcome:
    b = own_booking(session, ctx.principal, uuid.UUID(ctx.params["booking_id"]), for_update=True)
    return _reschedule(session, ctx, b, uuid.UUID(ctx.body["slot_id"]))


@operation("booking.admin_update")
def admin_update(session: Session, ctx: WriteContext) -> WriteOutcome:
    b = own_booking(session, ctx.principal, uuid.UUID(ctx.params["booking_id"]), for_update=True)
    action = ctx.body["action"]
    if action == "cancel":
        return _cancel(session, ctx, b, staff=True)
    if action == "reschedule":
        return _reschedule(session, ctx, b, uuid.UUID(ctx.body["new_slot_id"]))
    if action == "no_show":
        if b.status != "confirmed":
            raise BookingClosed(f"only a confirmed booking can be a no-show (it is {b.status})")
        if b.start_at > _now(session):
            raise BookingClosed("a booking cannot be a no-show before it starts")
        b.status, b.updated_at = "no_show", func.now()
        session.flush()
        session.refresh(b)
        _event(session, "booking.no_show", b, ctx.request_id)
        return _outcome(b)
    raise DomainError(f"unknown action {action}")


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
    if status:
        query = query.where(Booking.status == status)
    if date_from:
        query = query.where(Booking.start_at >= dt.datetime.combine(date_from, dt.time(), dt.UTC))
    if date_to:
        end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), dt.UTC)
        query = query.where(Booking.start_at < end)
    if location_id:
        query = query.where(Booking.location_id == location_id)
    if stylist_id:
        query = query.where(Booking.stylist_id == stylist_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Booking.start_at, Booking.id).offset((page - 1) * page_size).limit(page_size)
    )
    return [booking_view(b) for b in rows], total
