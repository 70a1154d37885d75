"""Request and response shapes (pydantic): validation at the edge and the OpenAPI document."""

from __future__ import annotations

import uuid
import zoneinfo
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Name = Annotated[str, Field(min_length=1, max_length=200)]
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


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: int = Field(1, ge=1)
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
    name: Name | None = None
    timezone: str | None = None
    address: str | None = Field(None, max_length=500)
    active: bool | None = None

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
    name: Name | None = None
    location_ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=50)
    active: bool | None = None


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
    name: Name | None = None
    duration_minutes: Minutes | None = None
    buffer_minutes: Annotated[int, Field(ge=0, le=240)] | None = None
    price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    stylist_ids: list[uuid.UUID] | None = Field(None, max_length=500)
    duration_overrides: dict[uuid.UUID, Minutes] | None = None
    active: bool | None = None


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
