"""Availability rules: when each stylist works, per location (design.md "Data").

A rule for one stylist, or for every stylist of a location (`stylist_id` null). Open rules that
would put one stylist at two locations at the same real time are refused (409,
`salon.rules.clashes`), and every change makes the existing slots follow the rules in the same
transaction (`salon.rules.coverage`): a closed day's slots are blocked at once, a reopened day's
open again."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.tables import AvailabilityRule, Location, Service, StylistLocation
from salon.auth import Principal
from salon.errors import InvalidInput, NotFound
from salon.infra.locks import lock_roster
from salon.rules.clashes import refuse_rule_clash
from salon.rules.coverage import follow_rules, rule_dates, stylists_at, widest
from salon.tenancy import own_location, own_stylist
from salon.write_path.model import WriteContext, WriteOutcome

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


def own_rule(session: Session, principal: Principal, rule_id: uuid.UUID) -> AvailabilityRule:
    row = session.get(AvailabilityRule, rule_id)
    if row is None:
        raise NotFound(f"availability rule {rule_id} not found")
    loc = session.get(Location, row.location_id)
    if loc is None or loc.biz_entity_id != principal.biz:
        raise NotFound(f"availability rule {rule_id} not found")
    return row


def _lock(session: Session, principal: Principal) -> None:
    """Before anything is read: rules of a brand change one at a time (`salon.rules.clashes`)."""
    if principal.biz is None:
        raise NotFound("no such brand")
    lock_roster(session, principal.biz)


def _pairs(session: Session, row: AvailabilityRule) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The (stylist, location) pairs whose hours the rule shapes."""
    stylists = [row.stylist_id] if row.stylist_id else stylists_at(session, row.location_id)
    return {(s, row.location_id) for s in stylists}


def create_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    _lock(session, ctx.principal)
    values = _parse(ctx.body)
    row = AvailabilityRule(id=ctx.write_id, **{k: values.get(k) for k in FIELDS if k in values})
    _check_refs(session, ctx.principal, row)
    session.add(row)
    session.flush()
    refuse_rule_clash(session, row)
    touched = follow_rules(session, _pairs(session, row), rule_dates(row))
    session.refresh(row)
    return WriteOutcome(
        201, rule_view(row), f"/admin/v1/availabilities/{row.id}", touched_stylists=touched
    )


def update_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    _lock(session, ctx.principal)
    row = own_rule(session, ctx.principal, uuid.UUID(ctx.params["rule_id"]))
    before, was = _pairs(session, row), rule_dates(row)
    values = _parse(ctx.body)
    for name in FIELDS:
        if name in values:
            setattr(row, name, values[name])
    check_rule_shape(rule_view(row))
    _check_refs(session, ctx.principal, row)
    row.updated_at = func.now()
    session.flush()
    refuse_rule_clash(session, row)
    dates = widest(was, rule_dates(row))
    touched = follow_rules(session, before | _pairs(session, row), dates)
    session.refresh(row)
    return WriteOutcome(200, rule_view(row), touched_stylists=touched)


def delete_rule(session: Session, ctx: WriteContext) -> WriteOutcome:
    _lock(session, ctx.principal)
    row = own_rule(session, ctx.principal, uuid.UUID(ctx.params["rule_id"]))
    pairs, dates = _pairs(session, row), rule_dates(row)
    session.execute(delete(AvailabilityRule).where(AvailabilityRule.id == row.id))
    touched = follow_rules(session, pairs, dates)
    return WriteOutcome(204, {}, touched_stylists=touched)


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
