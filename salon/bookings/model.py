"""A booking's states, the errors its changes raise, its view and its outbox events.

Each change of a booking runs inside the write actor's one transaction and writes an outbox
event in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import Booking, OutboxEvent
from salon.bookings.customer import opened
from salon.encoding import jsonable
from salon.errors import Conflict
from salon.infra.pii import PiiCodec, mask_paths
from salon.public_times.versions import TimeChange
from salon.write_path.model import WriteOutcome

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


def booking_view(
    b: Booking,
    pii: PiiCodec,
    now: dt.datetime | None = None,
    clear: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The booking as clients see it, its PII in clear (the write path seals it again before
    storing an answer); with `now` (a read), a lapsed hold shows as expired. `clear`: the
    row's PII already known (a new booking), not opened again."""
    clear = clear if clear is not None else opened(pii, b)
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
        "customer": {
            "name": b.customer_name,
            "phone": clear["customer_phone"],
            "email": clear["customer_email"],
        },
        "notes": clear["notes"],
        "source": b.source,
        "created_at": b.created_at,
        "confirmed_at": b.confirmed_at,
        "cancelled_at": b.cancelled_at,
        "cancel_reason": b.cancel_reason,
    }


def event_view(b: Booking, pii: PiiCodec) -> dict[str, Any]:
    """An outbox event's payload: the booking with its PII masked (a notifier that must reach
    the customer reads the booking itself)."""
    view: dict[str, Any] = mask_paths(jsonable(booking_view(b, pii)))
    return view


def record_event(
    session: Session, topic: str, b: Booking, request_id: str | None, pii: PiiCodec
) -> None:
    session.add(
        OutboxEvent(
            topic=topic,
            aggregate_id=b.id,
            payload=event_view(b, pii),
            request_id=request_id,
        )
    )


def db_now(session: Session) -> dt.datetime:
    # The database's clock decides expiry, so every process agrees on "now".
    value: dt.datetime = session.execute(select(func.now())).scalar_one()
    return value


def record_expired(session: Session, ids: list[uuid.UUID], rid: str | None, pii: PiiCodec) -> None:
    """`booking.expired` for the stale holds just expired (rare: the sweep usually came first)."""
    if ids:
        for b in session.scalars(select(Booking).where(Booking.id.in_(ids))):
            record_event(session, "booking.expired", b, rid, pii)
        session.flush()  # before the change's own event, as they happened


def outcome_of(
    b: Booking, pii: PiiCodec, status: int = 200, location: str | None = None
) -> WriteOutcome:
    return WriteOutcome(status, booking_view(b, pii), location, touched_times=(time_of(b),))


def time_of(b: Booking) -> TimeChange:
    return (b.stylist_id, b.start_at, b.end_at)


def event_payload(b: Booking, pii: PiiCodec) -> str:
    return json.dumps(event_view(b, pii), separators=(",", ":"))
