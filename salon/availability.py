"""Availability rules: when each stylist works, per location (design.md "Data").

A rule for one stylist, or for every stylist of a location (`stylist_id` null). Open rules that
would put one stylist at two locations at the same real time are refused (409), whatever the
two locations' time zones: both sides are expanded with the pure code of `models.rules`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from models.rules import Rule, intervals_overlap, open_intervals_between
from models.tables import AvailabilityRule, Location, Service, StylistLocation
from salon.auth import Principal
from salon.catalogue import own_location, own_stylist
from salon.errors import Conflict, InvalidInput, NotFound
from salon.writes import WriteContext, WriteOutcome, operation

# How far ahead an open-ended rule is compared with others: a year covers every weekday and
# both DST changes of every zone.
CLASH_WINDOW_DAYS = 366

FIELDS = (
    "location_id",
    "stylist_id",
    "service_id",
    "rule_kind",
    "days_of_week",
    "start_time",
    "end_time",
    "slot_granularity_minutes",
    "valid_from",
    "valid_to",
    "is_closed",
)


def rule_view(row: AvailabilityRule) -> dict[str, Any]:
    return {
        "id": row.id,
        "location_id": row.location_id,
        "stylist_id": row.stylist_id,
        "service_id": row.service_id,
        "rule_kind": row.rule_kind,
        "days_of_week": list(row.days_of_week) if row.days_of_week else None,
        "start_time": row.start_time.strftime("%H:%M"),
        # Midnight as an end is the end of the day.
        "end_time": "24:00" if row.end_time == dt.time(0) else row.end_time.strftime("%H:%M"),
        "slot_granularity_minutes": row.slot_granularity_minutes,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "is_closed": row.is_closed,
    }


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


def _parse(body: dict[str, Any]) -> dict[str, Any]:
    """The API validated the shape; here the values become Python types for the row."""
    values = dict(body)
    for name in ("location_id", "stylist_id", "service_id"):
        if values.get(name) is not None:
            values[name] = uuid.UUID(values[name])
    for name in ("start_time", "end_time"):
        if name in values:
            raw = values[name]
            values[name] = dt.time(0) if raw == "24:00" else dt.time.fromisoformat(raw)
    for name in ("valid_from", "valid_to"):
        if values.get(name) is not None:
            values[name] = dt.date.fromisoformat(values[name])
    if "rule_kind" in values:
        values["rule_kind"] = values["rule_kind"].upper()
    return values


def _check_refs(session: Session, principal: Principal, row: AvailabilityRule) -> None:
    own_location(session, principal, row.location_id)
    if row.stylist_id is not None:
        own_stylist(session, principal, row.stylist_id)
        works_there = session.get(StylistLocation, (row.stylist_id, row.location_id))
        if works_there is None:
            raise InvalidInput(
                "the stylist does not work at this location",
                errors=[{"field": "stylist_id", "message": "not assigned to location_id"}],
            )
    if row.service_id is not None:
        service = session.get(Service, row.service_id)
        if service is None or service.location_id != row.location_id:
            raise InvalidInput(
                "unknown service for this location",
                errors=[{"field": "service_id", "message": "not a service of location_id"}],
            )


def _window(rule: Rule, other: Rule, today: dt.date) -> tuple[dt.date, dt.date] | None:
    first = max(d for d in (rule.valid_from, other.valid_from, today) if d is not None)
    lasts = [d for d in (rule.valid_to, other.valid_to) if d is not None]
    last = min([*lasts, first + dt.timedelta(days=CLASH_WINDOW_DAYS)])
    return (first, last) if first <= last else None


def find_clash(session: Session, row: AvailabilityRule) -> AvailabilityRule | None:
    """An open rule elsewhere that would have a stylist of this rule at two places at once."""
    if row.is_closed:
        return None
    here = session.get(Location, row.location_id)
    assert here is not None
    if row.stylist_id is not None:
        stylists = [row.stylist_id]
    else:
        stylists = list(
            session.scalars(
                select(StylistLocation.stylist_id).where(
                    StylistLocation.location_id == row.location_id
                )
            )
        )
    if not stylists:
        return None
    links = session.execute(
        select(StylistLocation.stylist_id, StylistLocation.location_id).where(
            StylistLocation.stylist_id.in_(stylists),
            StylistLocation.location_id != row.location_id,
        )
    ).all()
    mine = to_rule(row)
    today = dt.date.today()
    for stylist_id, location_id in links:
        there = session.get(Location, location_id)
        assert there is not None
        candidates = session.scalars(
            select(AvailabilityRule).where(
                AvailabilityRule.location_id == location_id,
                AvailabilityRule.is_closed.is_(False),
                AvailabilityRule.id != row.id,
                or_(
                    AvailabilityRule.stylist_id == stylist_id,
                    AvailabilityRule.stylist_id.is_(None),
                ),
            )
        )
        for other in candidates:
            theirs = to_rule(other)
            window = _window(mine, theirs, today)
            if window is None:
                continue
            a = open_intervals_between([mine], window[0], window[1], ZoneInfo(here.timezone))
            b = open_intervals_between([theirs], window[0], window[1], ZoneInfo(there.timezone))
            if intervals_overlap(a, b) is not None:
                return other
    return None


def _refuse_clash(session: Session, row: AvailabilityRule) -> None:
    clash = find_clash(session, row)
    if clash is not None:
        raise Conflict(
            f"a stylist would be at two locations at once: clashes with rule {clash.id}",
            clashing_rule_id=str(clash.id),
            clashing_location_id=str(clash.location_id),
        )


def own_rule(session: Session, principal: Principal, rule_id: uuid.UUID) -> AvailabilityRule:
    row = session.get(AvailabilityRule, rule_id)
    if row is None:
        raise NotFound(f"availability rule {rule_id} not found")
    loc = session.get(Location, row.location_id)
    if loc is None or loc.biz_entity_id != principal.biz:
        raise NotFound(f"availability rule {rule_id} not found")
    return row


@operation("availability.create")
def create_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    values = _parse(ctx.body)
    row = AvailabilityRule(id=ctx.write_id, **{k: values.get(k) for k in FIELDS if k in values})
    _check_refs(session, ctx.principal, row)
    session.add(row)
    session.flush()
    _refuse_clash(session, row)
    session.refresh(row)
    return WriteOutcome(201, rule_view(row), f"/admin/v1/availabilities/{row.id}")


@operation("availability.update")
def update_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    row = own_rule(session, ctx.principal, uuid.UUID(ctx.params["rule_id"]))
    values = _parse(ctx.body)
    for name in FIELDS:
        if name in values:
            setattr(row, name, values[name])
    check_rule_shape(rule_view(row))
    _check_refs(session, ctx.principal, row)
    row.updated_at = func.now()
    session.flush()
    _refuse_clash(session, row)
    session.refresh(row)
    return WriteOutcome(200, rule_view(row))


@operation("availability.delete")
def delete_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    row = own_rule(session, ctx.principal, uuid.UUID(ctx.params["rule_id"]))
    session.execute(delete(AvailabilityRule).where(AvailabilityRule.id == row.id))
    return WriteOutcome(204, {})


def check_rule_shape(rule: dict[str, Any]) -> None:
    """Rules every rule obeys, whole (a PATCH is checked after merging)."""
    errors: list[dict[str, str]] = []
    kind = str(rule["rule_kind"]).upper()
    start, end = str(rule["start_time"]), str(rule["end_time"])
    if end != "24:00" and end <= start:
        errors.append({"field": "end_time", "message": "must be after start_time"})
    if kind == "WEEKLY" and not rule.get("days_of_week"):
        errors.append({"field": "days_of_week", "message": "WEEKLY rules need days_of_week"})
    if kind in ("DATE_RANGE", "EXCEPTION") and not rule.get("valid_from"):
        errors.append({"field": "valid_from", "message": f"{kind} rules need valid_from"})
    if kind == "DATE_RANGE" and not rule.get("valid_to"):
        errors.append({"field": "valid_to", "message": "DATE_RANGE rules need valid_to"})
    vf, vt = rule.get("valid_from"), rule.get("valid_to")
    if vf and vt and str(vt) < str(vf):
        errors.append({"field": "valid_to", "message": "must not be before valid_from"})
    if errors:
        fields = ", ".join(e["field"] for e in errors)
        raise InvalidInput(f"invalid field(s): {fields}", errors=errors)


def list_rules(
    session: Session,
    principal: Principal,
    *,
    location_id: uuid.UUID | None,
    stylist_id: uuid.UUID | None,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    query = (
        select(AvailabilityRule)
        .join(Location, Location.id == AvailabilityRule.location_id)
        .where(Location.biz_entity_id == principal.biz)
    )
    if location_id is not None:
        query = query.where(AvailabilityRule.location_id == location_id)
    if stylist_id is not None:
        query = query.where(AvailabilityRule.stylist_id == stylist_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AvailabilityRule.created_at, AvailabilityRule.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return [rule_view(r) for r in rows], total
