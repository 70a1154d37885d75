"""A slot is open only while the rules cover it: its state follows every change of the rules.

Generation keeps a slot the rules no longer cover when a live booking sits on it (staff
resolve that conflict). Such a slot is `blocked`, and every reader and writer of free time
(the fit of a hold or a move, `/v1/slots`, the free runs behind `/v1/dates`) takes only
`open` slots, so the time is never offered or sold again whatever frees it later: a cancel,
a move away, an expired hold, a no-show.

`follow_rules` runs in the transaction of every change that can stop covering a slot or
cover it again (a rule created, changed or deleted; a stylist's locations or active flag; a
location's zone), under the stylists' locks: the future slots the rules no longer cover
become `blocked`, blocked ones they cover again become `open`. It creates and deletes
nothing (that is generation's work): a closure undone reopens the same slots at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, or_, select, text
from sqlalchemy.orm import Session

from models.rules import Rule, Slot, expand
from models.tables import AvailabilityRule, Location, Stylist, StylistLocation
from salon.infra.locks import lock_stylists


def to_rule(row: AvailabilityRule) -> Rule:
    return Rule(
        id=row.id,
        kind=row.rule_kind,
        start_time=row.start_time,
        end_time=row.end_time,
        days_of_week=tuple(row.days_of_week) if row.days_of_week else None,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        granularity_minutes=row.slot_granularity_minutes,
        is_closed=row.is_closed,
    )


def rules_for(session: Session, location_id: uuid.UUID, stylist_id: uuid.UUID) -> list[Rule]:
    """Every rule that shapes a stylist's hours at a location (their own and location-wide)."""
    rows = session.scalars(
        select(AvailabilityRule).where(
            AvailabilityRule.location_id == location_id,
            or_(AvailabilityRule.stylist_id == stylist_id, AvailabilityRule.stylist_id.is_(None)),
        )
    )
    return [to_rule(r) for r in rows]


def stylists_at(session: Session, location_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(StylistLocation.stylist_id).where(StylistLocation.location_id == location_id)
        )
    )


# Local dates a change can reach: (first, last), None for no bound.
Dates = tuple[dt.date | None, dt.date | None]
EVERY_DATE: Dates = (None, None)


def rule_dates(row: AvailabilityRule) -> Dates:
    """The local dates a rule applies to: it shapes no slot outside its validity."""
    return (row.valid_from, row.valid_to)


def widest(*ranges: Dates) -> Dates:
    firsts = [first for first, _ in ranges if first is not None]
    lasts = [last for _, last in ranges if last is not None]
    return (
        min(firsts) if len(firsts) == len(ranges) else None,
        max(lasts) if len(lasts) == len(ranges) else None,
    )


def follow_rules(
    session: Session, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]], dates: Dates = EVERY_DATE
) -> tuple[uuid.UUID, ...]:
    """Open exactly the future slots of these (stylist, location) pairs on these local dates
    that the rules cover now; block the others. Returns the stylists whose slots changed
    (their readers recheck)."""
    pairs = sorted(set(pairs), key=lambda p: (str(p[0]), str(p[1])))
    lock_stylists(session, [s for s, _ in pairs])
    changed: set[uuid.UUID] = set()
    for stylist_id, location_id in pairs:
        if _follow(session, stylist_id, location_id, dates):
            changed.add(stylist_id)
    return tuple(sorted(changed, key=str))


def _works_there(session: Session, stylist_id: uuid.UUID, location_id: uuid.UUID) -> bool:
    stylist = session.get(Stylist, stylist_id)
    if stylist is None or not stylist.active:
        return False
    return session.get(StylistLocation, (stylist_id, location_id)) is not None


# The future slots of one stylist at one location take the state the rules give them: open
# where a wanted (start, end) matches, blocked elsewhere. One statement, rows that change only.
_FOLLOW = text(
    """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
            AS w(start_at, end_at)
    ), target AS (
        SELECT sl.id, CASE WHEN w.start_at IS NULL THEN 'blocked' ELSE 'open' END AS status
        FROM scheduler.slot_instances sl
        LEFT JOIN wanted w ON w.start_at = sl.start_at AND w.end_at = sl.end_at
        WHERE sl.stylist_id = :stylist AND sl.location_id = :location AND sl.end_at > now()
          AND sl.local_date BETWEEN :first AND :last
    )
    UPDATE scheduler.slot_instances sl SET status = target.status
    FROM target WHERE sl.id = target.id AND sl.status <> target.status
    """
)

# Past slots can no longer be booked: only the future matters.
_FUTURE_DATES = text(
    """
    SELECT min(local_date), max(local_date) FROM scheduler.slot_instances
    WHERE stylist_id = :stylist AND location_id = :location AND end_at > now()
      AND local_date BETWEEN :first AND :last
    """
)


def _follow(session: Session, stylist_id: uuid.UUID, location_id: uuid.UUID, dates: Dates) -> bool:
    ids = {
        "stylist": stylist_id,
        "location": location_id,
        "first": dates[0] or dt.date.min,
        "last": dates[1] or dt.date.max,
    }
    first, last = session.execute(_FUTURE_DATES, ids).one()
    if first is None:
        return False
    wanted: list[Slot] = []
    if _works_there(session, stylist_id, location_id):
        location = session.get(Location, location_id)
        assert location is not None
        rules = rules_for(session, location_id, stylist_id)
        wanted = expand(rules, first, last, ZoneInfo(location.timezone))
    changed = session.execute(
        _FOLLOW,
        ids | {"starts": [s.start_at for s in wanted], "ends": [s.end_at for s in wanted]},
    )
    return bool(cast(CursorResult[Any], changed).rowcount)
