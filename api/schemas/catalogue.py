"""Bodies of the catalogue: locations, stylists, services."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
)

from api.schemas.common import In, Keep, Minutes, Name, Out, Page, check_timezone

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
