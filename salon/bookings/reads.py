"""Finding bookings: a customer's own (locked for a change, or to read), staff's lists."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, select, text
from sqlalchemy.orm import Session

from models.tables import Booking, Location
from salon.auth import STAFF_ROLES, Principal
from salon.bookings.model import booking_view, db_now
from salon.errors import NotFound
from salon.infra.locks import LOCK_SQL, STYLIST, lock_stylists
from salon.infra.pii import PiiCodec


def _check_owner(principal: Principal, b: Booking, booking_id: uuid.UUID) -> None:
    # Someone else's booking is "not found": ids cannot be probed.
    if principal.role in STAFF_ROLES:
        if b.biz_entity_id != principal.biz:
            raise NotFound(f"booking {booking_id} not found")
        # A stylist's token names them (`sub` = their stylist id): only their own bookings.
        if principal.role == "stylist" and b.stylist_id != principal.sub:
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


def own_booking_locked(
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
    pii: PiiCodec,
    q: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    query = select(Booking)
    if principal.role in STAFF_ROLES:
        query = query.where(Booking.biz_entity_id == principal.biz)
        if principal.role == "stylist":
            query = query.where(Booking.stylist_id == principal.sub)
    else:
        query = query.where(Booking.user_id == principal.sub)
    now = db_now(session)
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
    if q:
        query = query.where(search_condition(pii, q))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Booking.start_at, Booking.id).offset((page - 1) * page_size).limit(page_size)
    )
    return [booking_view(b, pii, now) for b in rows], total


# What a search term is: an email has an `@`; a phone is digits among the separators the API
# accepts (`CustomerIn`); anything else is the start of a customer's name.
_PHONE = re.compile(r"^\+?[ ()./-]*(?:[0-9][ ()./-]*){5,}$")


def search_condition(pii: PiiCodec, q: str) -> ColumnElement[bool]:
    """Staff's `q`: the exact phone or email (by their keyed hashes: the columns are sealed),
    or a prefix of the customer's name, case-insensitive."""
    q = q.strip()
    if "@" in q:
        return Booking.customer_email_hash == pii.email_hash(q)
    if _PHONE.match(q):
        # Without its `+` (unsaid on the phone, or turned into a space by a query string's
        # encoding) a number still finds the international spelling of the same digits.
        spellings = {q} if q.startswith("+") else {q, "+" + q}
        return Booking.customer_phone_hash.in_([pii.phone_hash(p) for p in spellings])
    prefix = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(Booking.customer_name).like(prefix + "%", escape="\\")


def read_booking(
    session: Session, principal: Principal, booking_id: uuid.UUID, pii: PiiCodec
) -> dict[str, Any]:
    """`GET` of one booking: the principal's own, as of the database clock."""
    return booking_view(own_booking(session, principal, booking_id), pii, db_now(session))
