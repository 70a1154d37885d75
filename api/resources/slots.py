"""Staff's slot tools: bulk generation jobs, their progress, and the slot listing."""

from __future__ import annotations

import falcon

from api.openapi import doc
from api.resources.base import BaseResource, parse_uuid
from api.schemas.slots import GenerateIn, JobOut, SlotPage, SlotQuery
from api.validation import parse_query
from api.writes import submit_write
from salon import operations
from salon.generation import jobs as generation
from salon.generation import slots


class GenerateSlots(BaseResource):
    @doc(
        "Generate slot instances from the rules (202 with a job; dry_run counts only)",
        tag="admin",
        body=GenerateIn,
        responses={202: JobOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, GenerateIn)
        generation.check_range(body.from_, body.to)
        submit_write(
            req,
            resp,
            self.container,
            operations.GENERATE,
            body.model_dump(mode="json", by_alias=True),
        )


class Job(BaseResource):
    @doc(
        "A generation job: status, progress, created, removed, skipped, conflicts",
        tag="admin",
        responses={200: JobOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        with self.container.sessions() as s:
            job = generation.get_job(s, req.context.principal, parse_uuid(job_id, "job"))
            resp.media = generation.job_view(job)


class Slots(BaseResource):
    @doc(
        "Slot instances in time order (UTC and local), paginated",
        tag="admin",
        query=SlotQuery,
        responses={200: SlotPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, SlotQuery)
        generation.check_range(q.from_, q.to)
        with self.container.sessions() as s:
            items, total = slots.list_slots(
                s,
                req.context.principal,
                location_id=q.location_id,
                stylist_id=q.stylist_id,
                date_from=q.from_,
                date_to=q.to,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)
