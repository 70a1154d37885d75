"""What every resource shares: its container, body parsing, pages, ids from the path."""

from __future__ import annotations

import uuid
from typing import Any

import falcon
from pydantic import BaseModel

from api.schemas.common import PageQuery
from api.validation import parse_body
from salon.bootstrap import Container
from salon.errors import NotFound


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """An id in the path that is not a UUID names nothing: 404, like an unknown id."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} {value} not found") from None


class BaseResource:
    def __init__(self, container: Container) -> None:
        self.container = container

    def body(self, req: falcon.Request, model: type[BaseModel]) -> Any:
        return parse_body(req, model, self.container.settings.max_body_bytes)

    def optional_body(self, req: falcon.Request, model: type[BaseModel]) -> dict[str, Any]:
        """For writes whose body may be omitted (confirm, cancel)."""
        if not req.content_length:
            return {}
        parsed: dict[str, Any] = self.body(req, model).model_dump(mode="json", exclude_none=True)
        return parsed

    def page(self, items: list[dict[str, Any]], total: int, q: PageQuery) -> dict[str, Any]:
        return {"items": items, "page": q.page, "page_size": q.page_size, "total": total}
