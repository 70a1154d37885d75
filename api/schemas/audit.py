"""The audit trail of staff writes, as read by admins and managers."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, model_validator

from api.schemas.common import Instant, Out, Page, PageQuery


class AuditQuery(PageQuery):
    object_type: str | None = Field(None, min_length=1, max_length=50)
    object_id: uuid.UUID | None = None
    actor: uuid.UUID | None = None  # the staff member's `sub`
    action: str | None = Field(None, min_length=1, max_length=100)
    from_: Instant | None = Field(None, alias="from")  # inclusive
    to: Instant | None = None  # exclusive

    @model_validator(mode="after")
    def _ordered(self) -> AuditQuery:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


class Actor(Out):
    sub: uuid.UUID
    role: str


class AuditEventOut(Out):
    id: uuid.UUID
    at: str
    actor: Actor
    action: str
    object_type: str
    object_id: uuid.UUID | None
    request_id: str | None
    write_id: uuid.UUID | None
    # The fields the write changed (all of them for a create or a delete); PII masked.
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(Page):
    items: list[AuditEventOut]  # type: ignore[assignment]
