"""Queries and answers of the customers' free times: dates, offered times, the exposure ledger."""

from __future__ import annotations

import uuid
from datetime import date as dt_date
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from api.schemas.common import Day, Instant, IsoDate, Out, between

# --- public availability --------------------------------------------------------------------


class DatesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: Day | None = Field(None, alias="from")
    days: int = Field(30, ge=1, le=90)
    location_id: uuid.UUID
    service_id: uuid.UUID
    stylist_id: uuid.UUID | None = None
    timezone: str | None = None  # accepted for the seed's clients; dates are the location's


class DateOut(Out):
    date: dt_date
    has_availability: bool
    total_slots: int


class DatesOut(Out):
    location_id: uuid.UUID
    service_id: uuid.UUID
    stylist_id: uuid.UUID | None
    timezone: str
    dates: list[DateOut]


class SlotsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: Day
    location_id: uuid.UUID
    service_id: uuid.UUID
    stylist_id: uuid.UUID | None = None
    timezone: str | None = None


class ExposedSlot(Out):
    slot_id: uuid.UUID
    stylist_id: uuid.UUID
    start_at: str
    end_at: str
    local_start: str
    local_end: str


class ExposureOut(Out):
    date: dt_date
    service_id: uuid.UUID
    stylist_id: uuid.UUID | None
    exposed_slots: list[ExposedSlot]
    total_available: int
    has_more: bool
    exposure_expires_at: str
    next_available_date: dt_date | None


class LedgerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str | None = None
    # Its end bounds the read as a stream id (milliseconds since 1970): an earlier date gave
    # Redis a negative id, a date near 9999 overflowed (both were 500s).
    date: Annotated[IsoDate, between(dt_date(1970, 1, 1), dt_date(2999, 12, 31))] | None = None
    # Recorded from `since` up to `until` (aware instants); `before`: the `next` of a previous
    # page (an entry id), to go on from there.
    since: Instant | None = None
    until: Instant | None = None
    before: Annotated[str, Field(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] | None = None
    limit: int = Field(100, ge=1, le=1000)

    @field_validator("before")
    @classmethod
    def _an_entry_id(cls, value: str | None) -> str | None:
        # What Redis takes as an exclusive bound: two 64-bit numbers, not 0-0.
        if value is not None:
            ms, seq = (int(part) for part in value.split("-"))
            if ms >= 2**64 or seq >= 2**64 or (ms, seq) == (0, 0):
                raise ValueError("not a ledger entry id (use a page's next)")
        return value

    @field_validator("since", "until")
    @classmethod
    def _after_1970(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        if value is not None and value.timestamp() < 0:
            raise ValueError("before the ledger's first possible entry (1970)")
        return value


class LedgerOut(Out):
    items: list[dict[str, str]]
    next: str | None  # more may be older than this entry: ask again with before=next
