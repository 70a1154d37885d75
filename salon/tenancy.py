"""Staff reach only their own brand (biz_entity): another tenant's object is "not found", never
403, so its existence is not revealed."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from models.tables import Location, Service, Stylist
from salon.auth import Principal
from salon.errors import NotFound


def own_biz(principal: Principal) -> uuid.UUID:
    if principal.biz is None:
        raise NotFound("no such object")
    return principal.biz


def own_location(session: Session, principal: Principal, location_id: uuid.UUID) -> Location:
    loc = session.get(Location, location_id)
    if loc is None or loc.biz_entity_id != principal.biz:
        raise NotFound(f"location {location_id} not found")
    return loc


def own_stylist(session: Session, principal: Principal, stylist_id: uuid.UUID) -> Stylist:
    stylist = session.get(Stylist, stylist_id)
    if stylist is None or stylist.biz_entity_id != principal.biz:
        raise NotFound(f"stylist {stylist_id} not found")
    return stylist


def own_service(session: Session, principal: Principal, service_id: uuid.UUID) -> Service:
    service = session.get(Service, service_id)
    if service is None:
        raise NotFound(f"service {service_id} not found")
    own_location(session, principal, service.location_id)
    return service
