"""`GET /v1/requests/{id}`: the status and result of an enqueued write (its owner only)."""

from __future__ import annotations

import uuid

import falcon

from api.openapi import doc
from api.schemas.common import WriteRequestOut
from models.tables import WriteRequest
from salon.bootstrap import Container
from salon.errors import NotFound
from salon.infra.pii import pii_codec
from salon.write_path.model import describe


class WriteRequestResource:
    def __init__(self, container: Container) -> None:
        self.container = container

    @doc(
        "Status and result of an enqueued write",
        tag="requests",
        responses={200: WriteRequestOut},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        try:
            write_id = uuid.UUID(request_id)
        except ValueError:
            raise NotFound("no such request") from None
        with self.container.sessions() as session:
            row = session.get(WriteRequest, write_id)
            # Someone else's request is "not found": ids must not be probeable.
            if row is None or row.principal != req.context.principal.key:
                raise NotFound("no such request")
            resp.media = describe(row, pii_codec(self.container.settings))
