"""Staff's view of slot instances: time order, UTC and the location's local time."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import Location, SlotInstance
from salon.auth import Principal
from salon.encoding import rfc3339


def list_slots(
    session: Session,
    principal: Principal,
    *,
    location_id: uuid.UUID | None,
    stylist_id: uuid.UUID | None,
    date_from: dt.date,
    date_to: dt.date,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    query = (
        select(SlotInstance, Location.timezone)
        .join(Location, Location.id == SlotInstance.location_id)
        .where(
            Location.biz_entity_id == principal.biz,
            SlotInstance.local_date >= date_from,
            SlotInstance.local_date <= date_to,
        )
    )
    if location_id is not None:
        query = query.where(SlotInstance.location_id == location_id)
    if stylist_id is not None:
        query = query.where(SlotInstance.stylist_id == stylist_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(SlotInstance.start_at, SlotInstance.stylist_id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    zones: dict[str, ZoneInfo] = {}
    items = []
    for slot, tz in rows:
        zone = zones.setdefault(tz, ZoneInfo(tz))
        items.append(
            {
                "id": slot.id,
                "location_id": slot.location_id,
                "stylist_id": slot.stylist_id,
                "start_at": rfc3339(slot.start_at),
                "end_at": rfc3339(slot.end_at),
                "local_start": slot.start_at.astimezone(zone).isoformat(),
                "local_date": slot.local_date,
                "status": slot.status,
            }
        )
    return items, total
