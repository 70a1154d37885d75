"""`/v1/dates` and `/v1/slots`: what a customer's app shows (anonymous callers welcome)."""

from __future__ import annotations

import re
import uuid

import falcon

from api.errors import ProblemError
from api.openapi import doc
from api.resources.base import BaseResource
from api.schemas.public_times import (
    DatesOut,
    DatesQuery,
    ExposureOut,
    LedgerOut,
    LedgerQuery,
    SlotsQuery,
)
from api.validation import parse_query
from models.exposure import VARIANTS
from salon.bootstrap import Container
from salon.public_times.calendars import Calendars
from salon.public_times.exposures import ExposureService
from salon.public_times.stored_answers import StoredAnswers

SESSION_COOKIE = "salon_sid"
# Set by `api.slots_entrance`: (exposure key, what the lookup under it found), so it is not
# repeated.
ENV_LOOKUP = "salon.exposure_lookup"
# Set by `api.slots_entrance` when choosing this request's new ask failed: the exception, raised
# here again so Falcon's error handlers answer it (an outage is not waited for twice).
ENV_FAILURE = "salon.exposure_failure"
_SESSION = re.compile(r"^[0-9a-f]{32}$")


def session_id_of(given: str | None) -> str | None:
    """The anonymous session id a caller sent (header or cookie), normalized; None if unusable."""
    session_id = given.lower().replace("-", "") if given else ""
    return session_id if _SESSION.match(session_id) else None


def subject_for(req: falcon.Request, resp: falcon.Response) -> str:
    """Whose exposure: the user, or the anonymous session (issued here when missing)."""
    principal = req.context.principal
    if principal is not None:
        return f"user:{principal.sub}"
    session_id = session_id_of(req.get_header("X-Session-Id") or req.cookies.get(SESSION_COOKIE))
    if session_id is None:
        # Two anonymous callers never share an exposure: each gets a fresh random id.
        session_id = uuid.uuid4().hex
        resp.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=30 * 86400,
            path="/",
            http_only=True,
            same_site="Lax",
            secure=req.scheme == "https",
        )
    resp.set_header("X-Session-Id", session_id)
    return f"session:{session_id}"


class PublicResource(BaseResource):
    def __init__(self, container: Container, reads: StoredAnswers | None = None) -> None:
        super().__init__(container)
        # One per process, shared by the public resources: offers and day lists are kept in it.
        reads = reads or StoredAnswers(container)
        self.exposures = ExposureService(container, reads)
        self.calendars = Calendars(container, reads)


class Dates(PublicResource):
    @doc(
        "Dates with free times for a service (the location's calendar days)",
        tag="availability",
        query=DatesQuery,
        responses={200: DatesOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, DatesQuery)
        resp.data = self.calendars.calendar(
            location_id=q.location_id,
            service_id=q.service_id,
            stylist_id=q.stylist_id,
            first=q.from_,
            days=q.days,
            now=self.container.clock.now(),
        )
        resp.content_type = falcon.MEDIA_JSON


class Slots(PublicResource):
    @doc(
        "An exposure: 2-5 free times, sticky for the caller, with totals",
        tag="availability",
        query=SlotsQuery,
        responses={200: ExposureOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, SlotsQuery)
        variant = (req.get_header("X-Exposure-Variant") or "balanced").lower()
        if variant not in VARIANTS:
            raise ProblemError(
                422,
                "Invalid input",
                f"X-Exposure-Variant: one of {VARIANTS}",
                errors=[
                    {"field": "X-Exposure-Variant", "message": f"one of {', '.join(VARIANTS)}"}
                ],
            )
        subject = subject_for(req, resp)
        resp.set_header("X-Exposure-Variant", variant)
        looked_up = req.env.get(ENV_LOOKUP)  # what api.slots_entrance found under this ask's key
        failed = req.env.pop(ENV_FAILURE, None)  # popped: it refers to the environ
        if failed is not None:
            raise failed
        resp.data = self.exposures.exposure(
            subject=subject,
            location_id=q.location_id,
            service_id=q.service_id,
            stylist_id=q.stylist_id,
            day=q.date,
            variant=variant,
            now=self.container.clock.now(),
            looked_up=looked_up,
        )
        resp.content_type = falcon.MEDIA_JSON


class ExposureLedger(PublicResource):
    @doc(
        "Recent exposures of the brand (support: who was shown which times, and why)",
        tag="admin",
        query=LedgerQuery,
        responses={200: LedgerOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, LedgerQuery)
        page = self.exposures.ledger(
            biz=req.context.principal.biz,
            subject=q.subject,
            day=q.date,
            since=q.since,
            until=q.until,
            before=q.before,
            limit=q.limit,
        )
        resp.media = {"items": page.items, "next": page.next}
