"""Bookings: customers' hold/confirm/cancel/reschedule under /v1, staff's under /admin/v1.

Every write goes through the queue (`api.writes.submit_write`); reads come from PostgreSQL.
"""

from __future__ import annotations

import falcon

from api.access import require_action
from api.openapi import doc
from api.resources.base import BaseResource, parse_uuid
from api.schemas.bookings import (
    AdminBookingPatch,
    AdminBookingQuery,
    BookingOut,
    BookingPage,
    BookingQuery,
    CancelIn,
    HoldIn,
    RescheduleIn,
    StaffBookingIn,
)
from api.validation import parse_query
from api.writes import submit_write
from salon import operations
from salon.bookings import reads
from salon.errors import InvalidInput
from salon.infra.pii import pii_codec


class Bookings(BaseResource):
    @doc(
        "Your bookings",
        tag="bookings",
        query=BookingQuery,
        responses={200: BookingPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, BookingQuery)
        with self.container.sessions() as s:
            items, total = reads.list_bookings(
                s,
                req.context.principal,
                status=q.status,
                date_from=q.date_from,
                date_to=q.date_to,
                location_id=None,
                stylist_id=None,
                page=q.page,
                page_size=q.page_size,
                pii=pii_codec(self.container.settings),
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Hold a time (201 with hold_expires_at; 409 slot-unavailable when taken)",
        tag="bookings",
        body=HoldIn,
        responses={201: BookingOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, HoldIn)
        submit_write(req, resp, self.container, operations.HOLD, body.model_dump(mode="json"))


class Booking(BaseResource):
    @doc("One of your bookings", tag="bookings", responses={200: BookingOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        with self.container.sessions() as s:
            resp.media = reads.read_booking(
                s,
                req.context.principal,
                parse_uuid(booking_id, "booking"),
                pii_codec(self.container.settings),
            )


class ConfirmBooking(BaseResource):
    @doc(
        "Confirm a held booking (again: the same 200)",
        tag="bookings",
        responses={200: BookingOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        submit_write(
            req,
            resp,
            self.container,
            operations.CONFIRM,
            {},
            {"booking_id": str(parse_uuid(booking_id, "booking"))},
        )


class CancelBooking(BaseResource):
    @doc(
        "Cancel a booking (customers: up to the cut-off before the start)",
        tag="bookings",
        body=CancelIn,
        responses={200: BookingOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        body = self.optional_body(req, CancelIn)
        submit_write(
            req,
            resp,
            self.container,
            operations.CANCEL,
            body,
            {"booking_id": str(parse_uuid(booking_id, "booking"))},
        )


class RescheduleBooking(BaseResource):
    @doc(
        "Move a booking to another time, atomically (409 if it is taken)",
        tag="bookings",
        body=RescheduleIn,
        responses={200: BookingOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        body = self.body(req, RescheduleIn)
        submit_write(
            req,
            resp,
            self.container,
            operations.RESCHEDULE,
            body.model_dump(mode="json"),
            {"booking_id": str(parse_uuid(booking_id, "booking"))},
        )


class AdminBookings(BaseResource):
    @doc(
        "Bookings of the brand (filters, pagination; `q`: a customer's exact phone or email,"
        " or the start of their name)",
        tag="admin",
        query=AdminBookingQuery,
        responses={200: BookingPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, AdminBookingQuery)
        with self.container.sessions() as s:
            items, total = reads.list_bookings(
                s,
                req.context.principal,
                status=q.status,
                date_from=q.date_from,
                date_to=q.date_to,
                location_id=q.location_id,
                stylist_id=q.stylist_id,
                page=q.page,
                page_size=q.page_size,
                pii=pii_codec(self.container.settings),
                q=q.q,
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Book a named customer (a walk-in, a phone call): a hold, or confirmed with"
        " `confirm: true`; no customer hold limit",
        tag="admin",
        body=StaffBookingIn,
        responses={201: BookingOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, StaffBookingIn)
        submit_write(req, resp, self.container, operations.STAFF_BOOK, body.model_dump(mode="json"))


class AdminBooking(BaseResource):
    @doc("One booking of the brand", tag="admin", responses={200: BookingOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        with self.container.sessions() as s:
            resp.media = reads.read_booking(
                s,
                req.context.principal,
                parse_uuid(booking_id, "booking"),
                pii_codec(self.container.settings),
            )

    @doc(
        "Cancel, reschedule, confirm a hold, or mark a started booking completed or a no-show"
        " (staff: no cut-off; a stylist: complete or no_show of their own)",
        tag="admin",
        body=AdminBookingPatch,
        responses={200: BookingOut},
        write=True,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        body = self.body(req, AdminBookingPatch)
        require_action(req, body.action)
        if body.action == "reschedule" and body.new_slot_id is None:
            raise InvalidInput(
                "reschedule needs new_slot_id",
                errors=[{"field": "new_slot_id", "message": "required"}],
            )
        submit_write(
            req,
            resp,
            self.container,
            operations.STAFF_CHANGE,
            body.model_dump(mode="json", exclude_none=True),
            {"booking_id": str(parse_uuid(booking_id, "booking"))},
        )
