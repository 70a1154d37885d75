"""Every write operation, by the name the API records and the worker runs (`salon.write_path`).

A resource submits one of these; the write actor looks its name up in `BY_NAME`. Holds and
confirms refuse before their first write, so they run without a savepoint.
"""

from __future__ import annotations

from collections.abc import Mapping

from salon.bookings import changes, holds
from salon.catalogue import service as catalogue
from salon.generation import jobs as generation
from salon.rules import service as rules
from salon.write_path.model import Operation

LOCATION_CREATE = Operation("location.create", catalogue.create_location)
LOCATION_UPDATE = Operation("location.update", catalogue.update_location)
STYLIST_CREATE = Operation("stylist.create", catalogue.create_stylist)
STYLIST_UPDATE = Operation("stylist.update", catalogue.update_stylist)
SERVICE_CREATE = Operation("service.create", catalogue.create_service)
SERVICE_UPDATE = Operation("service.update", catalogue.update_service)
RULE_CREATE = Operation("rules.create", rules.create_rule)
RULE_UPDATE = Operation("rules.update", rules.update_rule)
RULE_DELETE = Operation("rules.delete", rules.delete_rule)
GENERATE = Operation("slots.generate", generation.request_generation)
HOLD = Operation("booking.hold", holds.hold, savepoint=False)
CONFIRM = Operation("booking.confirm", holds.confirm, savepoint=False)
STAFF_BOOK = Operation("booking.staff_create", holds.staff_book, savepoint=False)
CANCEL = Operation("booking.cancel", changes.cancel)
RESCHEDULE = Operation("booking.reschedule", changes.reschedule)
STAFF_CHANGE = Operation("booking.admin_update", changes.admin_update)

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
