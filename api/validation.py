"""Parsing request bodies and query strings into pydantic models, or a 4xx problem.

Bad input is refused here, before anything is recorded or enqueued.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from api.errors import ProblemError

M = TypeVar("M", bound=BaseModel)


def _field_errors(exc: ValidationError, whole: str) -> list[dict[str, str]]:
    return [
        {
            # `whole`: what an error of the whole model (a cross-field rule) is about.
            "field": ".".join(str(p) for p in err["loc"]) or whole,
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def invalid(exc: ValidationError, whole: str = "body") -> ProblemError:
    errors = _field_errors(exc, whole)
    fields = ", ".join(e["field"] for e in errors)
    return ProblemError(422, "Invalid input", f"invalid field(s): {fields}", errors=errors)


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The request's body, at most `max_bytes` (more: 413).

    A body without Content-Length (`Transfer-Encoding: chunked`) is read from the server's
    decoded stream when the server says that stream ends with the body (PEP 3333's
    `wsgi.input_terminated`, which gunicorn sets); Falcon's `bounded_stream` would read
    nothing of it (its bound is the missing length, 0), and a PATCH would "succeed" with an
    empty body. Behind a server that cannot say so, such a body is refused with 411.
    """
    length = req.content_length
    if length is not None:
        if length > max_bytes:
            raise ProblemError(413, "Payload too large", f"bodies are limited to {max_bytes} bytes")
        return req.bounded_stream.read(max_bytes + 1)
    if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
        return b""  # no body at all
    if not req.env.get("wsgi.input_terminated"):
        raise ProblemError(411, "Length required", "send the body with a Content-Length header")
    return req.stream.read(max_bytes + 1)


def parse_body(req: falcon.Request, model: type[M], max_bytes: int) -> M:
    if req.content_type is None or not req.content_type.split(";")[0].strip().endswith("json"):
        raise ProblemError(415, "Unsupported media type", "send the body as application/json")
    raw = read_body(req, max_bytes)
    if len(raw) > max_bytes:
        raise ProblemError(413, "Payload too large", f"bodies are limited to {max_bytes} bytes")
    try:
        parsed = model.model_validate_json(raw or b"{}", strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ProblemError(400, "Malformed JSON", "the body is not valid JSON") from exc
        raise invalid(exc) from exc
    # PostgreSQL cannot store U+0000 in text or jsonb: refused here, or the write's record
    # would fail with a 500. JSON can only carry it escaped, so most bodies skip the walk.
    if b"\\u0000" in raw:
        where = _nul_at(json.loads(raw), "")
        if where is not None:
            raise _nul_refused(where or "body")
    return parsed


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner
            found = _nul_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def _nul_refused(field: str) -> ProblemError:
    message = "must not contain the NUL character (U+0000)"
    return ProblemError(
        422,
        "Invalid input",
        f"invalid field(s): {field}",
        errors=[{"field": field, "message": message}],
    )


def parse_query(req: falcon.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for name, value in req.params.items():
        where = _nul_at({name: value}, "")
        if where is not None:
            raise _nul_refused(where)
        data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "query") from exc
