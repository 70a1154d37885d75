"""One stylist is never at two locations at the same real time.

Open rules are compared as real (UTC) intervals over the overlap of their validity (at most a
year ahead) with the pure expansion of `models.rules`, so locations in different zones compare
correctly. Every write that can create a clash (a rule created or changed, a stylist given
another location) takes its brand's roster lock first (`salon.infra.locks.lock_roster`), so two such
writes run one after the other and the second one's check sees the first one's commit: the
check cannot be raced.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.rules import Rule, intervals_overlap, open_intervals_between
from models.tables import AvailabilityRule, Location, StylistLocation
from salon.errors import Conflict
from salon.rules.coverage import stylists_at, to_rule

# How far ahead an open-ended rule is compared with others: a year covers every weekday and
# both DST changes of every zone.
CLASH_WINDOW_DAYS = 366


def _window(rule: Rule, other: Rule, today: dt.date) -> tuple[dt.date, dt.date] | None:
    first = max(d for d in (rule.valid_from, other.valid_from, today) if d is not None)
    lasts = [d for d in (rule.valid_to, other.valid_to) if d is not None]
    last = min([*lasts, first + dt.timedelta(days=CLASH_WINDOW_DAYS)])
    return (first, last) if first <= last else None


def _overlap(
    mine: AvailabilityRule, here: Location, theirs: AvailabilityRule, there: Location
) -> bool:
    a_rule, b_rule = to_rule(mine), to_rule(theirs)
    window = _window(a_rule, b_rule, dt.date.today())
    if window is None:
        return False
    a = open_intervals_between([a_rule], window[0], window[1], ZoneInfo(here.timezone))
    b = open_intervals_between([b_rule], window[0], window[1], ZoneInfo(there.timezone))
    return intervals_overlap(a, b) is not None


def _open_rules(
    session: Session, location_id: uuid.UUID, stylist_id: uuid.UUID
) -> list[AvailabilityRule]:
    return list(
        session.scalars(
            select(AvailabilityRule).where(
                AvailabilityRule.location_id == location_id,
                AvailabilityRule.is_closed.is_(False),
                or_(
                    AvailabilityRule.stylist_id == stylist_id,
                    AvailabilityRule.stylist_id.is_(None),
                ),
            )
        )
    )


def find_clash(session: Session, row: AvailabilityRule) -> AvailabilityRule | None:
    """An open rule elsewhere that would have a stylist of this rule at two places at once."""
    if row.is_closed:
        return None
    here = session.get(Location, row.location_id)
    assert here is not None
    stylists = [row.stylist_id] if row.stylist_id is not None else stylists_at(session, here.id)
    if not stylists:
        return None
    links = session.execute(
        select(StylistLocation.stylist_id, StylistLocation.location_id).where(
            StylistLocation.stylist_id.in_(stylists),
            StylistLocation.location_id != row.location_id,
        )
    ).all()
    for stylist_id, location_id in links:
        there = session.get(Location, location_id)
        assert there is not None
        for other in _open_rules(session, location_id, stylist_id):
            if other.id != row.id and _overlap(row, here, other, there):
                return other
    return None


def refuse_rule_clash(session: Session, row: AvailabilityRule) -> None:
    clash = find_clash(session, row)
    if clash is not None:
        raise Conflict(
            f"a stylist would be at two locations at once: clashes with rule {clash.id}",
            clashing_rule_id=str(clash.id),
            clashing_location_id=str(clash.location_id),
        )


def refuse_location_clash(
    session: Session,
    stylist_id: uuid.UUID,
    location_ids: Iterable[uuid.UUID],
    added: Iterable[uuid.UUID],
) -> None:
    """A stylist given new locations: no open rule at a new one may overlap one elsewhere."""
    new = set(added)
    locations = sorted(set(location_ids), key=str)
    for a, b in itertools.combinations(locations, 2):
        if a not in new and b not in new:
            continue  # both were the stylist's before: their rules were checked then
        here, there = session.get(Location, a), session.get(Location, b)
        assert here is not None and there is not None
        theirs = _open_rules(session, b, stylist_id)
        for mine in _open_rules(session, a, stylist_id):
            for other in theirs:
                if _overlap(mine, here, other, there):
                    raise Conflict(
                        f"the stylist would be at two locations at once: rule {mine.id} "
                        f"clashes with rule {other.id}",
                        clashing_rule_id=str(other.id),
                        clashing_location_id=str(other.location_id),
                    )
