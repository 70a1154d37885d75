"""Bodies of bookings: holds, cancels, moves, staff's changes, and the booking as read."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from api.schemas.common import Day, In, Name, Out, Page, PageQuery

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


class StaffBookingIn(HoldIn):
    """Staff book on a named customer's behalf: a hold, or confirmed at once."""

    confirm: bool = False


class AdminBookingPatch(In):
    # `confirm`: staff confirm a hold (their own on a customer's behalf, or a customer's).
    action: Literal["cancel", "reschedule", "no_show", "complete", "confirm"]
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
    # A customer's exact phone (any spelling the API accepts) or email, or a name's start.
    q: str | None = Field(None, min_length=1, max_length=254)
