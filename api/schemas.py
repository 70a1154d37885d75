"""Request and response shapes (pydantic): validation at the edge and the OpenAPI document."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import date as dt_date
from datetime import datetime as dt_datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# Dates and instants in bodies and queries: ISO 8601 / RFC 3339 text only. Pydantic also
# reads a number as a Unix time ("20240101" -> 1970-08-23, "0" -> 1970-01-01, even in strict
# JSON mode) and a date from a midnight date-time: a mistyped date would be taken for another
# one, and acted on (slots generated for 1970), instead of refused with a 422.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


# Parsed here, not by pydantic: the strict models would take no text for a date after this.
def _iso_date(value: Any) -> Any:
    if isinstance(value, str):
        if not _ISO_DATE.match(value):
            raise ValueError("not a date: use YYYY-MM-DD")
        return dt_date.fromisoformat(value)
    return value


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError("not an RFC 3339 date-time (e.g. 2026-03-01T09:00:00Z)")
        return dt_datetime.fromisoformat(value.upper())
    return value


IsoDate = Annotated[dt_date, BeforeValidator(_iso_date)]


def _between(first: dt_date, last: dt_date) -> Any:
    """A date's bounds. Pydantic documents them as "ge"/"le", which JSON Schema does not
    know (clients and fuzzers would not see them): they are documented in words instead."""

    def document(schema: dict[str, Any]) -> None:
        schema.pop("ge", None)
        schema.pop("le", None)
        schema["description"] = f"A date from {first} to {last}."

    return Field(ge=first, le=last, json_schema_extra=document)


# A date the service computes around (a day's margins in every zone, the days after it, a
# rule's year ahead): bounded so those stay valid dates (0001-01-01 or 9999-12-31 were 500s,
# or a worker's crash).
Day = Annotated[IsoDate, _between(dt_date(1900, 1, 1), dt_date(2999, 12, 31))]
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

# Surrounding blanks are dropped, so a name of blanks only is refused.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Minutes = Annotated[int, Field(gt=0, le=24 * 60)]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/London')")
    return value


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


T = TypeVar("T")


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null: leave the field out to keep its value")
    return value


def _not_nullable(schema: dict[str, Any]) -> None:
    # The document shows the field as what it takes: its type, without null.
    options = schema.pop("anyOf")
    schema.update(next(o for o in options if o != {"type": "null"}))
    schema.pop("default", None)


# A PATCH field that may be left out (the value stays) but not set to null: the write would
# store an empty value the resource cannot have, or crash in the worker (a null
# `location_ids` or `stylist_ids`), where it was retried and ended as a 500.
Keep = Annotated[T | None, BeforeValidator(_not_null), Field(json_schema_extra=_not_nullable)]


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded so the page's offset stays a PostgreSQL bigint (a larger one was a 500).
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=1000)


class Page(Out):
    items: list[dict[str, Any]]
    page: int
    page_size: int
    total: int


# --- locations ------------------------------------------------------------------------------


class LocationIn(In):
    name: Name
    timezone: str
    address: str | None = Field(None, max_length=500)
    active: bool = True

    _tz = field_validator("timezone")(check_timezone)


class LocationPatch(In):
    name: Keep[Name] = None
    timezone: Keep[str] = None
    address: str | None = Field(None, max_length=500)
    active: Keep[bool] = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class LocationOut(Out):
    id: uuid.UUID
    name: str
    timezone: str
    address: str | None
    active: bool


class LocationPage(Page):
    items: list[LocationOut]  # type: ignore[assignment]


# --- stylists -------------------------------------------------------------------------------


class StylistIn(In):
    name: Name
    location_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    active: bool = True


class StylistPatch(In):
    name: Keep[Name] = None
    location_ids: Keep[list[uuid.UUID]] = Field(None, min_length=1, max_length=50)
    active: Keep[bool] = None


class StylistOut(Out):
    id: uuid.UUID
    name: str
    location_ids: list[uuid.UUID]
    active: bool


class StylistPage(Page):
    items: list[StylistOut]  # type: ignore[assignment]


# --- services -------------------------------------------------------------------------------


class ServiceIn(In):
    location_id: uuid.UUID
    name: Name
    duration_minutes: Minutes
    buffer_minutes: Annotated[int, Field(ge=0, le=240)] = 0
    price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    stylist_ids: list[uuid.UUID] = Field(default_factory=list, max_length=500)
    duration_overrides: dict[uuid.UUID, Minutes] = Field(default_factory=dict)
    active: bool = True


class ServicePatch(In):
    name: Keep[Name] = None
    duration_minutes: Keep[Minutes] = None
    buffer_minutes: Keep[Annotated[int, Field(ge=0, le=240)]] = None
    price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    stylist_ids: Keep[list[uuid.UUID]] = Field(None, max_length=500)
    duration_overrides: Keep[dict[uuid.UUID, Minutes]] = None
    active: Keep[bool] = None


class ServiceOut(Out):
    id: uuid.UUID
    location_id: uuid.UUID
    name: str
    duration_minutes: int
    buffer_minutes: int
    price: str | None
    stylist_ids: list[uuid.UUID]
    duration_overrides: dict[str, int]
    active: bool


class ServicePage(Page):
    items: list[ServiceOut]  # type: ignore[assignment]


# --- write requests, health, problems -------------------------------------------------------


class WriteRequestOut(Out):
    id: uuid.UUID
    status: Literal["pending", "succeeded", "failed"]
    http_status: int | None
    result: dict[str, Any] | None
    location: str | None = None
    created_at: str | None = None
    completed_at: str | None = None


class Accepted(Out):
    id: uuid.UUID
    status: Literal["pending"]


class Problem(Out):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class Health(Out):
    status: str


class Ready(Out):
    status: str
    checks: dict[str, str]


def patch_body(model: BaseModel) -> dict[str, Any]:
    """Only the fields the caller sent, JSON-ready: PATCH changes nothing else."""
    return model.model_dump(mode="json", exclude_unset=True)


# --- availability rules ---------------------------------------------------------------------

HHMM = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["09:00"])]
# 24:00 ends a day; as a start it was stored as 00:00 and opened the whole day instead.
StartHHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
Weekday = Annotated[int, Field(ge=1, le=7)]


def check_granularity(value: int | None) -> int | None:
    if value is not None and 60 % value != 0:
        raise ValueError("must divide the hour (5, 6, 10, 12, 15, 20, 30 or 60)")
    return value


def check_days(value: list[int] | None) -> list[int] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("days must not repeat")
    return sorted(value) if value is not None else None


def check_kind(value: str | None) -> str | None:
    if value is None:
        return None
    upper = value.upper()
    if upper not in ("WEEKLY", "DATE_RANGE", "EXCEPTION"):
        raise ValueError("one of WEEKLY, DATE_RANGE, EXCEPTION")
    return upper


class RuleIn(In):
    location_id: uuid.UUID
    stylist_id: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    rule_kind: str
    days_of_week: list[Weekday] | None = Field(None, min_length=1, max_length=7)
    start_time: StartHHMM
    end_time: HHMM
    slot_granularity_minutes: Annotated[int, Field(ge=5, le=60)] = 15
    valid_from: Day | None = None  # a rule's window is computed from it (a year ahead)
    valid_to: IsoDate | None = None
    is_closed: bool = False

    _kind = field_validator("rule_kind")(check_kind)
    _days = field_validator("days_of_week")(check_days)
    _g = field_validator("slot_granularity_minutes")(check_granularity)


class RulePatch(In):
    stylist_id: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    rule_kind: Keep[str] = None
    days_of_week: list[Weekday] | None = Field(None, min_length=1, max_length=7)
    start_time: Keep[StartHHMM] = None
    end_time: Keep[HHMM] = None
    slot_granularity_minutes: Keep[Annotated[int, Field(ge=5, le=60)]] = None
    valid_from: Day | None = None  # a rule's window is computed from it (a year ahead)
    valid_to: IsoDate | None = None
    is_closed: Keep[bool] = None

    _kind = field_validator("rule_kind")(check_kind)
    _days = field_validator("days_of_week")(check_days)
    _g = field_validator("slot_granularity_minutes")(check_granularity)


class RuleOut(Out):
    id: uuid.UUID
    location_id: uuid.UUID
    stylist_id: uuid.UUID | None
    service_id: uuid.UUID | None
    rule_kind: str
    days_of_week: list[int] | None
    start_time: str
    end_time: str
    slot_granularity_minutes: int
    valid_from: dt_date | None
    valid_to: dt_date | None
    is_closed: bool


class RulePage(Page):
    items: list[RuleOut]  # type: ignore[assignment]


class RuleQuery(PageQuery):
    location_id: uuid.UUID | None = None
    stylist_id: uuid.UUID | None = None


# --- generation and slots -------------------------------------------------------------------


class GenerateIn(In):
    from_: Day = Field(alias="from")
    to: Day
    location_id: uuid.UUID | None = None
    stylist_ids: list[uuid.UUID] | None = Field(None, max_length=1000)
    dry_run: bool = False


class JobOut(Out):
    id: uuid.UUID
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    created: int
    removed: int
    skipped: int
    conflicts: int
    conflict_details: list[dict[str, Any]]


class SlotQuery(PageQuery):
    location_id: uuid.UUID | None = None
    stylist_id: uuid.UUID | None = None
    from_: IsoDate = Field(alias="from")
    to: IsoDate


class SlotOut(Out):
    id: uuid.UUID
    location_id: uuid.UUID
    stylist_id: uuid.UUID
    start_at: str
    end_at: str
    local_start: str
    local_date: dt_date
    status: str


class SlotPage(Page):
    items: list[SlotOut]  # type: ignore[assignment]


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
    date: Annotated[IsoDate, _between(dt_date(1970, 1, 1), dt_date(2999, 12, 31))] | None = None
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


# --- bookings -------------------------------------------------------------------------------


class CustomerIn(In):
    name: Name
    # At least 5 digits, among the usual separators.
    phone: Annotated[
        str, Field(min_length=5, max_length=32, pattern=r"^\+?[ ()./-]*(?:[0-9][ ()./-]*){5,}$")
    ]
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = (
        None
    )


class HoldIn(In):
    slot_id: uuid.UUID
    service_id: uuid.UUID
    customer: CustomerIn
    notes: str | None = Field(None, max_length=1000)
    consent: dict[str, Any] | None = None
    source: str | None = Field(None, max_length=50)


class CancelIn(In):
    reason: str | None = Field(None, max_length=500)


class RescheduleIn(In):
    slot_id: uuid.UUID


class AdminBookingPatch(In):
    action: Literal["cancel", "reschedule", "no_show"]
    reason: str | None = Field(None, max_length=500)
    new_slot_id: uuid.UUID | None = None


class CustomerOut(Out):
    name: str
    phone: str
    email: str | None


class BookingOut(Out):
    id: uuid.UUID  # the same as booking_id (design.md: a created resource carries its `id`)
    booking_id: uuid.UUID
    status: Literal["held", "confirmed", "completed", "cancelled", "expired", "no_show"]
    slot_id: uuid.UUID | None
    service_id: uuid.UUID
    stylist_id: uuid.UUID
    location_id: uuid.UUID
    start_at: str
    end_at: str
    hold_expires_at: str | None
    customer: CustomerOut


class BookingPage(Page):
    items: list[BookingOut]  # type: ignore[assignment]


class BookingQuery(PageQuery):
    status: Literal["held", "confirmed", "completed", "cancelled", "expired", "no_show"] | None = (
        None
    )
    # The location's own dates (a booking's date is the day it starts there); bounded so the
    # search's margins around them stay valid dates.
    date_from: Day | None = None
    date_to: Day | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BookingQuery:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from must not be after date_to")
        return self


class AdminBookingQuery(BookingQuery):
    location_id: uuid.UUID | None = None
    stylist_id: uuid.UUID | None = None
