"""The building blocks every body and query shares: strict dates and instants, names, pages,
problems, and the write request's answers.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import date as dt_date
from datetime import datetime as dt_datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
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


def between(first: dt_date, last: dt_date) -> Any:
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
Day = Annotated[IsoDate, between(dt_date(1900, 1, 1), dt_date(2999, 12, 31))]
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
