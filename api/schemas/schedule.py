"""The day view of a location (`GET /admin/v1/schedule`)."""

from __future__ import annotations

import uuid
from datetime import date as dt_date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from api.schemas.common import Day, Out


class ScheduleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: uuid.UUID
    date: Day
    stylist_id: uuid.UUID | None = None


class Span(Out):
    """An interval in UTC (`start_at`, `end_at`, RFC 3339) and in the location's time (ISO
    8601 with the offset in force at each end: they differ across a DST change)."""

    start_at: str
    end_at: str
    local_start: str
    local_end: str


class ScheduleSlot(Span):
    slot_id: uuid.UUID
    status: Literal["open", "blocked"]


class ScheduleCustomer(Out):
    name: str


class ScheduleBooking(Span):
    booking_id: uuid.UUID
    status: Literal["held", "confirmed", "completed", "no_show"]
    service_id: uuid.UUID
    service_name: str
    slot_id: uuid.UUID | None
    occupied_until: str
    hold_expires_at: str | None
    customer: ScheduleCustomer


class ScheduleColumn(Out):
    stylist_id: uuid.UUID
    name: str
    hours: list[Span]
    breaks: list[Span]
    slots: list[ScheduleSlot]
    bookings: list[ScheduleBooking]


class ScheduleOut(Out):
    location_id: uuid.UUID
    date: dt_date
    timezone: str
    stylists: list[ScheduleColumn]
