"""Whether a start fits a hold or a move: the offer and the free time, in one statement.

Writes that take or free a stylist's time take that stylist's advisory lock first
(`salon.infra.locks`); the exclusion constraint `bookings_no_overlap` remains the last word, and
its violation is a 409 (the write path maps it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.tables import SlotInstance
from salon.bookings.model import HoldLimitReached, record_expired
from salon.errors import InvalidInput, NotFound, SlotUnavailable
from salon.write_path.model import WriteContext

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
class Place:
    """The slot a hold or a move asks for."""

    id: uuid.UUID
    location_id: uuid.UUID
    stylist_id: uuid.UUID
    start_at: dt.datetime


def check_then_expire(
    session: Session,
    ctx: WriteContext,
    slot: Place,
    service_id: uuid.UUID,
    *,
    exclude: uuid.UUID | None = None,
    customer: uuid.UUID | None = None,
    notice_minutes: int | None = None,
) -> tuple[int, int]:
    """Check the hold limit (with `customer`) and the fit, raising refusals before anything is
    written; then expire the stale holds over the time, if any (rare), with their events.
    `notice_minutes`: the minimum notice (default: the setting's).
    Returns the service's minutes and the minutes the booking occupies."""
    s = ctx.settings
    params = fit_params(
        slot.location_id,
        service_id,
        slot.stylist_id,
        slot.start_at,
        s.min_notice_minutes if notice_minutes is None else notice_minutes,
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
        record_expired(session, list(expired), ctx.request_id, ctx.pii)
    return minutes, need


def _require_fit(check: FitCheck, slot: Place, service_id: uuid.UUID) -> tuple[int, int]:
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


def slot_row(session: Session, slot_id: uuid.UUID) -> SlotInstance:
    slot = session.get(SlotInstance, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id} not found")
    return slot


def check_fit_after_expiry(
    session: Session,
    ctx: WriteContext,
    slot: SlotInstance,
    service_id: uuid.UUID,
    exclude: uuid.UUID | None = None,
) -> tuple[int, int]:
    place = Place(slot.id, slot.location_id, slot.stylist_id, slot.start_at)
    return check_then_expire(session, ctx, place, service_id, exclude=exclude)
