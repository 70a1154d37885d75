"""Parsing request bodies and query strings into pydantic models, or a 4xx problem.

Bad input is refused here, before anything is recorded or enqueued.
"""

from __future__ import annotations

from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from api.errors import ProblemError

M = TypeVar("M", bound=BaseModel)


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def invalid(exc: ValidationError) -> ProblemError:
    errors = _field_errors(exc)
    fields = ", ".join(e["field"] for e in errors)
    return ProblemError(422, "Invalid input", f"invalid field(s): {fields}", errors=errors)


def parse_body(req: falcon.Request, model: type[M], max_bytes: int) -> M:
    if req.content_type is None or not req.content_type.split(";")[0].strip().endswith("json"):
        raise ProblemError(415, "Unsupported media type", "send the body as application/json")
    length = req.content_length
    if length is not None and length > max_bytes:
        raise ProblemError(413, "Payload too large", f"bodies are limited to {max_bytes} bytes")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ProblemError(413, "Payload too large", f"bodies are limited to {max_bytes} bytes")
    try:
        return model.model_validate_json(raw or b"{}", strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ProblemError(400, "Malformed JSON", "the body is not valid JSON") from exc
        raise invalid(exc) from exc


def parse_query(req: falcon.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for name, value in req.params.items():
        data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from exc
