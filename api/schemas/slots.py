"""Bodies of slot generation and staff's slot lists."""

from __future__ import annotations

import uuid
from datetime import date as dt_date
from typing import Any, Literal

from pydantic import (
    Field,
)

from api.schemas.common import Day, In, IsoDate, Out, Page, PageQuery

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
