"""Bodies of the working-hour rules."""

from __future__ import annotations

import uuid
from datetime import date as dt_date
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
)

from api.schemas.common import Day, In, IsoDate, Keep, Out, Page, PageQuery

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
