"""`/admin/v1/availabilities`: staff define when stylists work (writes via the queue)."""

from __future__ import annotations

import falcon

from api.openapi import doc
from api.resources.base import BaseResource, parse_uuid
from api.schemas.common import patch_body
from api.schemas.rules import RuleIn, RuleOut, RulePage, RulePatch, RuleQuery
from api.validation import parse_query
from api.writes import submit_write
from salon import operations
from salon.rules import service as rules


class Availabilities(BaseResource):
    @doc(
        "Availability rules of the caller's brand",
        tag="admin",
        query=RuleQuery,
        responses={200: RulePage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, RuleQuery)
        with self.container.sessions() as s:
            items, total = rules.list_rules(
                s,
                req.context.principal,
                location_id=q.location_id,
                stylist_id=q.stylist_id,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Create an availability rule (409 if it puts a stylist at two places at once)",
        tag="admin",
        body=RuleIn,
        responses={201: RuleOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, RuleIn).model_dump(mode="json")
        rules.check_rule_shape(body)
        submit_write(req, resp, self.container, operations.RULE_CREATE, body)


class Availability(BaseResource):
    @doc("One availability rule", tag="admin", responses={200: RuleOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        with self.container.sessions() as s:
            row = rules.own_rule(s, req.context.principal, parse_uuid(rule_id, "rule"))
            resp.media = rules.rule_view(row)

    @doc(
        "Change an availability rule",
        tag="admin",
        body=RulePatch,
        responses={200: RuleOut},
        write=True,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        body = patch_body(self.body(req, RulePatch))
        submit_write(
            req,
            resp,
            self.container,
            operations.RULE_UPDATE,
            body,
            {"rule_id": str(parse_uuid(rule_id, "rule"))},
        )

    @doc(
        "Delete an availability rule (slots change at the next generation)",
        tag="admin",
        responses={204: None},
        write=True,
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        submit_write(
            req,
            resp,
            self.container,
            operations.RULE_DELETE,
            {},
            {"rule_id": str(parse_uuid(rule_id, "rule"))},
        )
