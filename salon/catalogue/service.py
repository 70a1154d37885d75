"""Catalogue service: locations, stylists and services of a brand (biz_entity).

Writes are operations run by the write actor; reads are plain functions the API calls.
Staff see only their own biz_entity: another tenant's object is "not found", never 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.tables import Location, Service, ServiceStylist, Stylist, StylistLocation
from salon.auth import Principal
from salon.errors import InvalidInput, NotFound
from salon.infra.locks import lock_roster
from salon.rules.clashes import refuse_location_clash
from salon.rules.coverage import follow_rules, stylists_at
from salon.tenancy import own_biz, own_location, own_service, own_stylist
from salon.write_path.model import WriteContext, WriteOutcome


def location_view(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "timezone": loc.timezone,
        "address": loc.address,
        "active": loc.active,
    }


def stylist_view(stylist: Stylist, location_ids: list[uuid.UUID]) -> dict[str, Any]:
    return {
        "id": stylist.id,
        "name": stylist.name,
        "location_ids": sorted(location_ids, key=str),
        "active": stylist.active,
    }


def service_view(service: Service, offers: list[ServiceStylist]) -> dict[str, Any]:
    return {
        "id": service.id,
        "location_id": service.location_id,
        "name": service.name,
        "duration_minutes": service.duration_minutes,
        "buffer_minutes": service.buffer_minutes,
        "price": service.price,
        "stylist_ids": sorted((o.stylist_id for o in offers), key=str),
        "duration_overrides": {
            str(o.stylist_id): o.duration_minutes for o in offers if o.duration_minutes
        },
        "active": service.active,
    }


def _stylist_location_ids(session: Session, stylist_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(StylistLocation.location_id).where(StylistLocation.stylist_id == stylist_id)
        )
    )


def _check_locations(session: Session, principal: Principal, ids: list[uuid.UUID]) -> None:
    found = set(
        session.scalars(
            select(Location.id).where(Location.id.in_(ids), Location.biz_entity_id == principal.biz)
        )
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            "unknown location",
            errors=[{"field": "location_ids", "message": f"unknown location(s): {missing}"}],
        )


def _check_stylists_at(
    session: Session, location_id: uuid.UUID, stylist_ids: list[uuid.UUID]
) -> None:
    found = set(
        session.scalars(
            select(StylistLocation.stylist_id).where(
                StylistLocation.location_id == location_id,
                StylistLocation.stylist_id.in_(stylist_ids),
            )
        )
    )
    missing = [str(i) for i in stylist_ids if i not in found]
    if missing:
        raise InvalidInput(
            "stylist does not work at this location",
            errors=[{"field": "stylist_ids", "message": f"not at the location: {missing}"}],
        )


def _uuids(values: list[str]) -> list[uuid.UUID]:
    return [uuid.UUID(v) for v in dict.fromkeys(values)]


# --- locations ------------------------------------------------------------------------------


def create_location(session: Session, ctx: WriteContext) -> WriteOutcome:
    body = ctx.body
    loc = Location(
        id=ctx.write_id,  # the write's id: a replayed actor run cannot create a second one
        biz_entity_id=own_biz(ctx.principal),
        name=body["name"],
        timezone=body["timezone"],
        address=body.get("address"),
        active=body.get("active", True),
    )
    session.add(loc)
    session.flush()
    return WriteOutcome(
        201, location_view(loc), f"/admin/v1/locations/{loc.id}", catalogue_changed=True
    )


def update_location(session: Session, ctx: WriteContext) -> WriteOutcome:
    loc = own_location(session, ctx.principal, uuid.UUID(ctx.params["location_id"]))
    moved = "timezone" in ctx.body and ctx.body["timezone"] != loc.timezone
    if moved:
        lock_roster(session, own_biz(ctx.principal))
    for name in ("name", "timezone", "address", "active"):
        if name in ctx.body:
            setattr(loc, name, ctx.body[name])
    loc.updated_at = func.now()
    session.flush()
    if moved:
        # The rules are wall-clock times: in another zone they cover other instants.
        follow_rules(session, {(s, loc.id) for s in stylists_at(session, loc.id)})
    session.refresh(loc)
    return WriteOutcome(200, location_view(loc), catalogue_changed=True)


# --- stylists -------------------------------------------------------------------------------


def create_stylist(session: Session, ctx: WriteContext) -> WriteOutcome:
    lock_roster(session, own_biz(ctx.principal))
    location_ids = _uuids(ctx.body["location_ids"])
    _check_locations(session, ctx.principal, location_ids)
    stylist = Stylist(
        id=ctx.write_id,
        biz_entity_id=own_biz(ctx.principal),
        name=ctx.body["name"],
        active=ctx.body.get("active", True),
    )
    session.add(stylist)
    session.flush()
    session.add_all(StylistLocation(stylist_id=stylist.id, location_id=i) for i in location_ids)
    session.flush()
    # Location-wide rules at two of them may overlap.
    refuse_location_clash(session, stylist.id, location_ids, added=location_ids)
    return WriteOutcome(
        201,
        stylist_view(stylist, location_ids),
        f"/admin/v1/stylists/{stylist.id}",
        catalogue_changed=True,
    )


def update_stylist(session: Session, ctx: WriteContext) -> WriteOutcome:
    lock_roster(session, own_biz(ctx.principal))
    stylist = own_stylist(session, ctx.principal, uuid.UUID(ctx.params["stylist_id"]))
    before = set(_stylist_location_ids(session, stylist.id))
    for name in ("name", "active"):
        if name in ctx.body:
            setattr(stylist, name, ctx.body[name])
    after = before
    if "location_ids" in ctx.body:
        location_ids = _uuids(ctx.body["location_ids"])
        _check_locations(session, ctx.principal, location_ids)
        session.execute(delete(StylistLocation).where(StylistLocation.stylist_id == stylist.id))
        session.add_all(StylistLocation(stylist_id=stylist.id, location_id=i) for i in location_ids)
        after = set(location_ids)
    stylist.updated_at = func.now()
    session.flush()
    refuse_location_clash(session, stylist.id, after, added=after - before)
    if "active" in ctx.body or after != before:
        # Slots at a location the stylist left, or of a deactivated stylist, are blocked;
        # back again, the ones the rules cover reopen.
        follow_rules(session, {(stylist.id, loc) for loc in before | after})
    session.refresh(stylist)
    return WriteOutcome(
        200,
        stylist_view(stylist, _stylist_location_ids(session, stylist.id)),
        catalogue_changed=True,
    )


# --- services -------------------------------------------------------------------------------


def _set_offers(
    session: Session, service: Service, stylist_ids: list[uuid.UUID], overrides: dict[str, int]
) -> None:
    unknown = [k for k in overrides if uuid.UUID(k) not in stylist_ids]
    if unknown:
        raise InvalidInput(
            "duration override for a stylist who does not offer the service",
            errors=[{"field": "duration_overrides", "message": f"not in stylist_ids: {unknown}"}],
        )
    _check_stylists_at(session, service.location_id, stylist_ids)
    session.execute(delete(ServiceStylist).where(ServiceStylist.service_id == service.id))
    session.add_all(
        ServiceStylist(service_id=service.id, stylist_id=i, duration_minutes=overrides.get(str(i)))
        for i in stylist_ids
    )


def _offers(session: Session, service_id: uuid.UUID) -> list[ServiceStylist]:
    return list(
        session.scalars(select(ServiceStylist).where(ServiceStylist.service_id == service_id))
    )


def create_service(session: Session, ctx: WriteContext) -> WriteOutcome:
    body = ctx.body
    location = own_location(session, ctx.principal, uuid.UUID(body["location_id"]))
    service = Service(
        id=ctx.write_id,
        location_id=location.id,
        name=body["name"],
        duration_minutes=body["duration_minutes"],
        buffer_minutes=body.get("buffer_minutes", 0),
        price=body.get("price"),
        active=body.get("active", True),
    )
    session.add(service)
    session.flush()
    _set_offers(
        session, service, _uuids(body.get("stylist_ids", [])), body.get("duration_overrides", {})
    )
    session.flush()
    session.refresh(service)
    return WriteOutcome(
        201,
        service_view(service, _offers(session, service.id)),
        f"/admin/v1/services/{service.id}",
        catalogue_changed=True,
    )


def update_service(session: Session, ctx: WriteContext) -> WriteOutcome:
    service = own_service(session, ctx.principal, uuid.UUID(ctx.params["service_id"]))
    for name in ("name", "duration_minutes", "buffer_minutes", "price", "active"):
        if name in ctx.body:
            setattr(service, name, ctx.body[name])
    if "stylist_ids" in ctx.body or "duration_overrides" in ctx.body:
        current = _offers(session, service.id)
        stylist_ids = (
            _uuids(ctx.body["stylist_ids"])
            if "stylist_ids" in ctx.body
            else [o.stylist_id for o in current]
        )
        overrides = ctx.body.get(
            "duration_overrides",
            {str(o.stylist_id): o.duration_minutes for o in current if o.duration_minutes},
        )
        _set_offers(session, service, stylist_ids, overrides)
    service.updated_at = func.now()
    session.flush()
    session.refresh(service)
    return WriteOutcome(
        200, service_view(service, _offers(session, service.id)), catalogue_changed=True
    )


# --- reads ----------------------------------------------------------------------------------


def list_locations(
    session: Session, *, biz: uuid.UUID | None, active_only: bool, page: int, page_size: int
) -> tuple[list[dict[str, Any]], int]:
    query = select(Location)
    if biz is not None:
        query = query.where(Location.biz_entity_id == biz)
    if active_only:
        query = query.where(Location.active.is_(True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Location.name, Location.id).offset((page - 1) * page_size).limit(page_size)
    )
    return [location_view(r) for r in rows], total


def list_stylists(
    session: Session,
    *,
    biz: uuid.UUID | None,
    location_id: uuid.UUID | None,
    active_only: bool,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(Stylist)
    if biz is not None:
        query = query.where(Stylist.biz_entity_id == biz)
    if location_id is not None:
        query = query.where(
            Stylist.id.in_(
                select(StylistLocation.stylist_id).where(StylistLocation.location_id == location_id)
            )
        )
    if active_only:
        query = query.where(Stylist.active.is_(True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    stylists = list(
        session.scalars(
            query.order_by(Stylist.name, Stylist.id).offset((page - 1) * page_size).limit(page_size)
        )
    )
    links: dict[uuid.UUID, list[uuid.UUID]] = {s.id: [] for s in stylists}
    for link in session.scalars(
        select(StylistLocation).where(StylistLocation.stylist_id.in_(list(links)))
    ):
        links[link.stylist_id].append(link.location_id)
    return [stylist_view(s, links[s.id]) for s in stylists], total


def list_services(
    session: Session,
    *,
    biz: uuid.UUID | None,
    location_id: uuid.UUID | None,
    active_only: bool,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(Service).join(Location, Location.id == Service.location_id)
    if biz is not None:
        query = query.where(Location.biz_entity_id == biz)
    if location_id is not None:
        query = query.where(Service.location_id == location_id)
    if active_only:
        query = query.where(Service.active.is_(True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    services = list(
        session.scalars(
            query.order_by(Service.name, Service.id).offset((page - 1) * page_size).limit(page_size)
        )
    )
    offers: dict[uuid.UUID, list[ServiceStylist]] = {s.id: [] for s in services}
    for offer in session.scalars(
        select(ServiceStylist).where(ServiceStylist.service_id.in_(list(offers)))
    ):
        offers[offer.service_id].append(offer)
    return [service_view(s, offers[s.id]) for s in services], total


def get_location(session: Session, principal: Principal, location_id: uuid.UUID) -> dict[str, Any]:
    return location_view(own_location(session, principal, location_id))


def get_stylist(session: Session, principal: Principal, stylist_id: uuid.UUID) -> dict[str, Any]:
    stylist = own_stylist(session, principal, stylist_id)
    return stylist_view(stylist, _stylist_location_ids(session, stylist.id))


def get_service(session: Session, principal: Principal, service_id: uuid.UUID) -> dict[str, Any]:
    service = own_service(session, principal, service_id)
    return service_view(service, _offers(session, service.id))


def public_location(session: Session, location_id: uuid.UUID) -> Location:
    loc = session.get(Location, location_id)
    if loc is None or not loc.active:
        raise NotFound(f"location {location_id} not found")
    return loc
