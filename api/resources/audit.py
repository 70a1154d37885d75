"""`GET /admin/v1/audit`: who changed what, when, and how (admins and managers)."""

from __future__ import annotations

import falcon

from api.auth import require_roles
from api.errors import ProblemError
from api.openapi import doc
from api.resources.base import BaseResource
from api.schemas.audit import AuditPage, AuditQuery
from api.validation import parse_query
from salon.write_path.audit import list_audit

# A brand's managers answer for its catalogue and rules: they read the trail with admins.
auditors = require_roles("admin", "manager")


class AuditTrail(BaseResource):
    @doc(
        "Staff writes, newest first: who, what, when, before/after (filters, pagination)",
        tag="admin",
        auth="staff",
        query=AuditQuery,
        responses={200: AuditPage},
    )
    @falcon.before(auditors)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, AuditQuery)
        principal = req.context.principal
        if principal.biz is None:
            raise ProblemError(403, "Forbidden", "staff tokens must carry a 'biz' claim")
        with self.container.sessions() as s:
            items, total = list_audit(
                s,
                principal,
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
