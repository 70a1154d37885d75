"""Changes to a booking after its hold: cancel, reschedule, and staff's updates."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func
from sqlalchemy.orm import Session

from models.tables import Booking, Location
from salon.auth import STAFF_ROLES
from salon.bookings.fit import check_fit_after_expiry, slot_row
from salon.bookings.holds import expire_lapsed
from salon.bookings.model import (
    LIVE,
    BookingClosed,
    CancellationWindowClosed,
    HoldExpired,
    RescheduleWindowClosed,
    booking_view,
    db_now,
    hold_lapsed,
    outcome_of,
    record_event,
    time_of,
)
from salon.bookings.reads import own_booking
from salon.errors import DomainError, InvalidInput, NotFound
from salon.write_path.model import WriteContext, WriteOutcome


def _too_late_for_customer(ctx: WriteContext, b: Booking, now: dt.datetime, *, staff: bool) -> bool:
    """A customer frees a confirmed booking's time only up to the cut-off before its start."""
    cutoff = dt.timedelta(hours=ctx.settings.cancel_cutoff_hours)
    return not staff and b.status == "confirmed" and b.start_at - now < cutoff


def _cancel(session: Session, ctx: WriteContext, b: Booking, *, staff: bool) -> WriteOutcome:
    if b.status == "cancelled":
        return outcome_of(b, ctx.pii)
    if b.status not in LIVE:
        raise BookingClosed(f"booking is {b.status}")
    now = db_now(session)
    if hold_lapsed(b, now):
        return expire_lapsed(session, ctx, b, now, BookingClosed("booking is expired"))
    if _too_late_for_customer(ctx, b, now, staff=staff):
        raise CancellationWindowClosed(
            f"customers can cancel up to {ctx.settings.cancel_cutoff_hours} h before the start;"
            " please call the salon"
        )
    b.status, b.cancelled_at, b.updated_at = "cancelled", now, now
    b.cancel_reason = ctx.body.get("reason")
    b.cancelled_by = ctx.principal.key
    session.flush()
    record_event(session, "booking.cancelled", b, ctx.request_id, ctx.pii)
    return outcome_of(b, ctx.pii)


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
    now = db_now(session)
    if hold_lapsed(b, now):
        return expire_lapsed(
            session, ctx, b, now, HoldExpired("the hold expired; choose a time again")
        )
    slot = slot_row(session, new_slot_id)
    location = session.get(Location, slot.location_id)
    if location is None or location.biz_entity_id != b.biz_entity_id:
        raise NotFound(f"slot {new_slot_id} not found")
    if slot.id == b.slot_id:
        return outcome_of(b, ctx.pii)  # already there: a repeat, whatever the cut-off
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
    minutes, need = check_fit_after_expiry(session, ctx, slot, b.service_id, b.id)
    old_time = time_of(b)
    b.rescheduled_from = b.start_at
    b.slot_id, b.stylist_id, b.location_id = slot.id, slot.stylist_id, slot.location_id
    b.start_at, b.end_at = slot.start_at, slot.start_at + dt.timedelta(minutes=need)
    b.service_minutes, b.updated_at = minutes, func.now()
    session.flush()
    session.refresh(b)
    record_event(session, "booking.rescheduled", b, ctx.request_id, ctx.pii)
    # Both stylists' time changed: the old one's was freed, the new one's taken.
    return WriteOutcome(200, booking_view(b, ctx.pii), touched_times=(old_time, time_of(b)))


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
    if action in ("no_show", "complete"):
        return _after_start(session, ctx, b, "no_show" if action == "no_show" else "completed")
    if action == "confirm":
        return _confirm(session, ctx, b)
    raise DomainError(f"unknown action {action}")


_DONE_WORDS = {"no_show": "a no-show", "completed": "completed"}


def _after_start(session: Session, ctx: WriteContext, b: Booking, status: str) -> WriteOutcome:
    """A confirmed booking that has started becomes `no_show` or `completed` (both final; its
    time is released as a cancel's is, and what remains of it lies past its start)."""
    now = db_now(session)
    if hold_lapsed(b, now):
        return expire_lapsed(session, ctx, b, now, BookingClosed("booking is expired"))
    if b.status == status:
        return outcome_of(b, ctx.pii)  # a repeat of the same change
    words = _DONE_WORDS[status]
    if b.status != "confirmed":
        raise BookingClosed(f"only a confirmed booking can be {words} (it is {b.status})")
    if b.start_at > now:
        raise BookingClosed(f"a booking cannot be {words} before it starts")
    b.status, b.updated_at = status, func.now()
    session.flush()
    session.refresh(b)
    record_event(session, f"booking.{status}", b, ctx.request_id, ctx.pii)
    return outcome_of(b, ctx.pii)


def _confirm(session: Session, ctx: WriteContext, b: Booking) -> WriteOutcome:
    """Staff confirm a hold (theirs on a customer's behalf, or a customer's on the phone):
    the customer's confirm, on the row `admin_update` locked already."""
    if b.status == "confirmed":
        return outcome_of(b, ctx.pii)
    now = db_now(session)
    expired = HoldExpired("the hold expired before it was confirmed; choose a time again")
    if hold_lapsed(b, now):
        return expire_lapsed(session, ctx, b, now, expired)
    if b.status == "expired":
        raise expired
    if b.status != "held":
        raise BookingClosed(f"booking is {b.status}")
    b.status, b.confirmed_at, b.updated_at = "confirmed", now, now
    session.flush()
    record_event(session, "booking.confirmed", b, ctx.request_id, ctx.pii)
    return outcome_of(b, ctx.pii)
