"""The day view (`GET /admin/v1/schedule`): one location's local date, per stylist their
working hours, breaks, slots and bookings, in the location's time and UTC.

Working hours come from the rules through the pure expansion (`models.rules.open_intervals`),
not from the generated slots: the rules are what staff set, and they hold for any date at
once, while slots exist only once generation has run for the date (the rolling horizon, a
job still running) and leave the hours' edges to a grid (a 45-minute tail under a 60-minute
granularity has no slot). The slots are shown beside them as they stand (open or blocked),
so a difference between the two is visible rather than hidden.

Five statements whatever the number of stylists: the location, the slots, the bookings, the
stylists, the rules.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models.rules import Interval, open_intervals
from models.tables import (
    AvailabilityRule,
    Booking,
    Service,
    SlotInstance,
    Stylist,
    StylistLocation,
)
from salon.auth import Principal
from salon.errors import NotFound
from salon.rules.coverage import to_rule
from salon.tenancy import own_location

# What a day's calendar shows: live bookings and the ones that took place.
SHOWN = ("held", "confirmed", "completed", "no_show")


def _times(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "start_at": start,
        "end_at": end,
        "local_start": start.astimezone(zone).isoformat(),
        "local_end": end.astimezone(zone).isoformat(),
    }


def _breaks(hours: list[Interval]) -> list[Interval]:
    """The gaps between a day's working intervals (merged and in order)."""
    return [(a_end, b_start) for (_, a_end), (b_start, _) in pairwise(hours)]


def day_view(
    session: Session,
    principal: Principal,
    location_id: uuid.UUID,
    day: dt.date,
    stylist_id: uuid.UUID | None,
) -> dict[str, Any]:
    loc = own_location(session, principal, location_id)
    if principal.role == "stylist":
        # A stylist's token names them: their own column only; another's is not theirs.
        if stylist_id not in (None, principal.sub):
            raise NotFound(f"stylist {stylist_id} not found")
        stylist_id = principal.sub
    zone = ZoneInfo(loc.timezone)
    # No zone is more than a day off UTC: a coarse UTC window keeps the start_at index useful,
    # and the local date is then checked exactly.
    since = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), dt.UTC)
    until = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(), dt.UTC)

    slot_query = select(SlotInstance).where(
        SlotInstance.location_id == loc.id, SlotInstance.local_date == day
    )
    booking_query = (
        select(Booking, Service.name)
        .join(Service, Service.id == Booking.service_id)
        .where(
            Booking.location_id == loc.id,
            Booking.start_at >= since,
            Booking.start_at < until,
            Booking.status.in_(SHOWN),
            # A hold past its expiry is expired, swept or not.
            or_(Booking.status != "held", Booking.hold_expires_at > func.now()),
        )
    )
    if stylist_id is not None:
        slot_query = slot_query.where(SlotInstance.stylist_id == stylist_id)
        booking_query = booking_query.where(Booking.stylist_id == stylist_id)
    slots = session.scalars(slot_query.order_by(SlotInstance.start_at)).all()
    bookings = [
        (b, service)
        for b, service in session.execute(booking_query.order_by(Booking.start_at, Booking.id))
        if b.start_at.astimezone(zone).date() == day
    ]

    # The columns: who works here (active), and anyone with a slot or booking here that day.
    seen = {s.stylist_id for s in slots} | {b.stylist_id for b, _ in bookings}
    works_here = select(StylistLocation.stylist_id).where(StylistLocation.location_id == loc.id)
    stylist_query = select(Stylist.id, Stylist.name).where(
        Stylist.biz_entity_id == loc.biz_entity_id,
        or_(and_(Stylist.id.in_(works_here), Stylist.active), Stylist.id.in_(seen)),
    )
    if stylist_id is not None:
        stylist_query = stylist_query.where(Stylist.id == stylist_id)
    stylists = session.execute(stylist_query.order_by(Stylist.name, Stylist.id)).all()
    ids = [s.id for s in stylists]

    rules: dict[uuid.UUID | None, list[AvailabilityRule]] = defaultdict(list)
    for row in session.scalars(
        select(AvailabilityRule).where(
            AvailabilityRule.location_id == loc.id,
            or_(AvailabilityRule.stylist_id.in_(ids), AvailabilityRule.stylist_id.is_(None)),
        )
    ):
        rules[row.stylist_id].append(row)

    slots_of: dict[uuid.UUID, list[SlotInstance]] = defaultdict(list)
    for s in slots:
        slots_of[s.stylist_id].append(s)
    bookings_of: dict[uuid.UUID, list[tuple[Booking, str]]] = defaultdict(list)
    for b, service in bookings:
        bookings_of[b.stylist_id].append((b, service))

    columns = []
    for who in stylists:
        # Their own rules and the location-wide ones, as generation takes them.
        hours = open_intervals([to_rule(r) for r in rules[who.id] + rules[None]], day, zone)
        columns.append(
            {
                "stylist_id": who.id,
                "name": who.name,
                "hours": [_times(a, b, zone) for a, b in hours],
                "breaks": [_times(a, b, zone) for a, b in _breaks(hours)],
                "slots": [
                    {"slot_id": s.id, "status": s.status, **_times(s.start_at, s.end_at, zone)}
                    for s in slots_of[who.id]
                ],
                "bookings": [_booking(b, service, zone) for b, service in bookings_of[who.id]],
            }
        )
    return {"location_id": loc.id, "date": day, "timezone": loc.timezone, "stylists": columns}


def _booking(b: Booking, service: str, zone: ZoneInfo) -> dict[str, Any]:
    service_end = (
        b.start_at + dt.timedelta(minutes=b.service_minutes) if b.service_minutes else b.end_at
    )
    return {
        "booking_id": b.id,
        "status": b.status,
        "service_id": b.service_id,
        "service_name": service,
        "slot_id": b.slot_id,
        **_times(b.start_at, service_end, zone),
        "occupied_until": b.end_at,
        "hold_expires_at": b.hold_expires_at if b.status == "held" else None,
        # Staff see who sits in the chair; phone and email stay in the booking itself.
        "customer": {"name": b.customer_name},
    }
