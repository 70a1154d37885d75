"""`GET /admin/v1/schedule`: a location's day per stylist (hours, breaks, slots, bookings)."""

from __future__ import annotations

import falcon

from api.openapi import doc
from api.resources.base import BaseResource
from api.schemas.schedule import ScheduleOut, ScheduleQuery
from api.validation import parse_query
from salon.bookings.schedule import day_view


class Schedule(BaseResource):
    @doc(
        "A location's day per stylist: working hours and breaks (from the rules), slots and"
        " bookings, in local time and UTC (a stylist: their own column)",
        tag="admin",
        query=ScheduleQuery,
        responses={200: ScheduleOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ScheduleQuery)
        with self.container.sessions() as s:
            resp.media = day_view(s, req.context.principal, q.location_id, q.date, q.stylist_id)
