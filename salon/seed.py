"""Demo data for `salon dev` and `salon seed`: one brand, three locations, six stylists and
their working hours (the scheduler generates the bookable slots from them at start-up).

Fixed ids, inserted with ON CONFLICT DO NOTHING: seeding twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.tables import (
    AuthUser,
    AvailabilityRule,
    BizEntity,
    Location,
    Service,
    Stylist,
    StylistLocation,
)

DEMO_BIZ = uuid.UUID("00000000-0000-0000-0000-000000000001")
DEMO_ADMIN = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
DEMO_CUSTOMER = uuid.UUID("00000000-0000-0000-0000-0000000000cc")


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-0000-0000-{n:012x}")


# Dubai has no DST; London and New York change on different dates.
LOCATIONS = [
    (_id(0x10), "Downtown Studio", "Asia/Dubai", "Sheikh Zayed Rd 1, Dubai"),
    (_id(0x11), "Soho Salon", "Europe/London", "12 Greek St, London"),
    (_id(0x12), "Brooklyn Loft", "America/New_York", "90 Wythe Ave, Brooklyn"),
]
STYLISTS = [
    (_id(0x20), "Aisha", [_id(0x10)]),
    (_id(0x21), "Omar", [_id(0x10)]),
    (_id(0x22), "Harriet", [_id(0x11)]),
    # Works in Dubai and London: one booking must block her at both.
    (_id(0x23), "Leila", [_id(0x10), _id(0x11)]),
    (_id(0x24), "Marcus", [_id(0x12)]),
    (_id(0x25), "Sofia", [_id(0x12)]),
]
# (id, location, name, duration, buffer, price)
SERVICES = [
    (_id(0x30), _id(0x10), "Women's cut", 60, 15, "45.00"),
    (_id(0x31), _id(0x10), "Blow-dry", 30, 0, "25.00"),
    (_id(0x32), _id(0x11), "Men's cut", 45, 0, "30.00"),
    (_id(0x33), _id(0x11), "Colour", 120, 15, "95.00"),
    (_id(0x34), _id(0x12), "Beard trim", 15, 5, "15.00"),
]

# Working hours, 09:00-18:00 local: (id, location, stylist, ISO weekdays). Leila splits her
# week between Dubai and London, so her hours never overlap.
WEEKDAYS = [1, 2, 3, 4, 5, 6]
HOURS = [
    (_id(0x40), _id(0x10), _id(0x20), WEEKDAYS),
    (_id(0x41), _id(0x10), _id(0x21), WEEKDAYS),
    (_id(0x42), _id(0x11), _id(0x22), WEEKDAYS),
    (_id(0x43), _id(0x10), _id(0x23), [7, 1, 2]),
    (_id(0x44), _id(0x11), _id(0x23), [3, 4, 5, 6]),
    (_id(0x45), _id(0x12), _id(0x24), WEEKDAYS),
    (_id(0x46), _id(0x12), _id(0x25), WEEKDAYS),
]


def seed_demo(session: Session) -> None:
    def put(model: type, rows: list[dict[str, object]]) -> None:
        session.execute(insert(model).values(rows).on_conflict_do_nothing())

    put(BizEntity, [{"id": DEMO_BIZ, "name": "Demo Hair Co."}])
    put(
        AuthUser,
        [
            {"id": DEMO_ADMIN, "email": "admin@example.com"},
            {"id": DEMO_CUSTOMER, "email": "customer@example.com"},
        ],
    )
    put(
        Location,
        [
            {"id": i, "biz_entity_id": DEMO_BIZ, "name": n, "timezone": tz, "address": a}
            for i, n, tz, a in LOCATIONS
        ],
    )
    put(Stylist, [{"id": i, "biz_entity_id": DEMO_BIZ, "name": n} for i, n, _ in STYLISTS])
    put(
        StylistLocation,
        [{"stylist_id": i, "location_id": loc} for i, _, locs in STYLISTS for loc in locs],
    )
    put(
        Service,
        [
            {
                "id": i,
                "location_id": loc,
                "name": n,
                "duration_minutes": d,
                "buffer_minutes": b,
                "price": Decimal(p),
            }
            for i, loc, n, d, b, p in SERVICES
        ],
    )
    put(
        AvailabilityRule,
        [
            {
                "id": i,
                "location_id": loc,
                "stylist_id": stylist,
                "rule_kind": "WEEKLY",
                "days_of_week": days,
                "start_time": dt.time(9),
                "end_time": dt.time(18),
            }
            for i, loc, stylist, days in HOURS
        ],
    )
