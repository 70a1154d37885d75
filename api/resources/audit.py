"""`GET /admin/v1/audit`: who changed what, when, and how (admins and managers)."""

from __future__ import annotations

import falcon

from api.openapi import doc
from api.resources.base import BaseResource
from api.schemas.audit import AuditPage, AuditQuery
from api.validation import parse_query
from salon.write_path.audit import list_audit


class AuditTrail(BaseResource):
    @doc(
        "Staff writes, newest first: who, what, when, before/after (filters, pagination)",
        tag="admin",
        query=AuditQuery,
        responses={200: AuditPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Who may read it (admins, managers; their brand): api.access.
        q = parse_query(req, AuditQuery)
        with self.container.sessions() as s:
            items, total = list_audit(
                s,
                req.context.principal,
                object_type=q.object_type,
                object_id=q.object_id,
                actor=q.actor,
                action=q.action,
                since=q.from_,
                until=q.to,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)
