"""Every write operation, by the name the API records and the worker runs (`salon.write_path`).

A resource submits one of these; the write actor looks its name up in `BY_NAME`. Holds and
confirms refuse before their first write, so they run without a savepoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from salon.bookings import changes, holds, reads
from salon.catalogue import service as catalogue
from salon.generation import jobs as generation
from salon.rules import service as rules
from salon.write_path.model import Operation, WriteContext

# The representation of a write's object before it: the audit trail's "before".


def _location(session: Session, ctx: WriteContext) -> dict[str, Any]:
    return catalogue.get_location(session, ctx.principal, uuid.UUID(ctx.params["location_id"]))


def _stylist(session: Session, ctx: WriteContext) -> dict[str, Any]:
    return catalogue.get_stylist(session, ctx.principal, uuid.UUID(ctx.params["stylist_id"]))


def _service(session: Session, ctx: WriteContext) -> dict[str, Any]:
    return catalogue.get_service(session, ctx.principal, uuid.UUID(ctx.params["service_id"]))


def _rule(session: Session, ctx: WriteContext) -> dict[str, Any]:
    rule_id = uuid.UUID(ctx.params["rule_id"])
    return rules.rule_view(rules.own_rule(session, ctx.principal, rule_id))


def _booking(session: Session, ctx: WriteContext) -> dict[str, Any]:
    booking_id = uuid.UUID(ctx.params["booking_id"])
    return reads.read_booking(session, ctx.principal, booking_id, ctx.pii)


LOCATION_CREATE = Operation("location.create", catalogue.create_location)
LOCATION_UPDATE = Operation("location.update", catalogue.update_location, before=_location)
STYLIST_CREATE = Operation("stylist.create", catalogue.create_stylist)
STYLIST_UPDATE = Operation("stylist.update", catalogue.update_stylist, before=_stylist)
SERVICE_CREATE = Operation("service.create", catalogue.create_service)
SERVICE_UPDATE = Operation("service.update", catalogue.update_service, before=_service)
RULE_CREATE = Operation("rules.create", rules.create_rule, object_type="rule")
RULE_UPDATE = Operation("rules.update", rules.update_rule, object_type="rule", before=_rule)
RULE_DELETE = Operation("rules.delete", rules.delete_rule, object_type="rule", before=_rule)
GENERATE = Operation("slots.generate", generation.request_generation, object_type="generation_job")
HOLD = Operation("booking.hold", holds.hold, savepoint=False)
CONFIRM = Operation("booking.confirm", holds.confirm, savepoint=False, before=_booking)
STAFF_BOOK = Operation("booking.staff_create", holds.staff_book, savepoint=False)
CANCEL = Operation("booking.cancel", changes.cancel, before=_booking)
RESCHEDULE = Operation("booking.reschedule", changes.reschedule, before=_booking)
STAFF_CHANGE = Operation("booking.admin_update", changes.admin_update, before=_booking)

BY_NAME: Mapping[str, Operation] = {
    op.name: op
    for op in (
        LOCATION_CREATE,
        LOCATION_UPDATE,
        STYLIST_CREATE,
        STYLIST_UPDATE,
        SERVICE_CREATE,
        SERVICE_UPDATE,
        RULE_CREATE,
        RULE_UPDATE,
        RULE_DELETE,
        GENERATE,
        HOLD,
        CONFIRM,
        STAFF_BOOK,
        CANCEL,
        RESCHEDULE,
        STAFF_CHANGE,
    )
}
