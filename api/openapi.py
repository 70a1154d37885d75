"""The OpenAPI 3.1 document, built from the routes the app really serves.

Each responder carries an `OperationDoc` (the `doc` decorator); `build_spec` walks the app's
route table, so a route cannot be added without appearing here (and a test checks the reverse).
Who may call each operation comes from the authorization table (`api.access`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from api.access import ACCESS, Access
from api.schemas.common import Accepted, Problem
from api.writes import KEY_PATTERN

F = TypeVar("F", bound=Callable[..., Any])

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class OperationDoc:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    write: bool = False
    content_type: str = "application/json"


def doc(
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | None] | None = None,
    write: bool = False,
    content_type: str = "application/json",
) -> Callable[[F], F]:
    def attach(fn: F) -> F:
        fn.__openapi__ = OperationDoc(  # type: ignore[attr-defined]
            summary, tag, body, query, responses or {200: None}, write, content_type
        )
        return fn

    return attach


def operations(resource: object, suffix: str | None) -> Iterable[tuple[str, OperationDoc | None]]:
    for method in METHODS:
        name = f"on_{method}" + (f"_{suffix}" if suffix else "")
        responder = getattr(resource, name, None)
        if responder is not None:
            yield method, getattr(responder, "__openapi__", None)


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}",
            mode=mode,  # type: ignore[arg-type]
        )
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _problem(components: _Components, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": components.ref(Problem, "serialization")}
        },
    }


_ERRORS = {
    400: "Malformed request or missing Idempotency-Key",
    401: "Missing or invalid bearer token",
    403: "Role not allowed",
    404: "Not found (or not yours)",
    409: "Conflict, or the same Idempotency-Key still running",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid input (fields named in `errors`), or Idempotency-Key reused with another body",
    429: "Rate limited",
    503: "PostgreSQL or Redis unavailable",
}


def _names_ids(model: type[BaseModel] | None) -> bool:
    """Whether the input names other objects by id: an unknown one (or another tenant's)
    answers 404, as an unknown id in the path does."""
    return model is not None and any(n.endswith(("_id", "_ids")) for n in model.model_fields)


def _operation(
    components: _Components, path: str, method: str, op: OperationDoc, access: Access
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in re.findall(r"{(\w+)}", path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if op.write:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "A new value (a UUID) per intent; the same one to retry it",
                "schema": {"type": "string", "pattern": KEY_PATTERN},
            }
        )
        params.append(
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "RFC 7240: `wait=N` (seconds) or `respond-async`",
                "schema": {"type": "string"},
            }
        )
    responses: dict[str, Any] = {}
    for status, model in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": "OK" if status < 300 else "See body"}
        if model is not None:
            entry["content"] = {op.content_type: {"schema": components.ref(model, "serialization")}}
        elif op.content_type != "application/json":
            # A YAML body is a document (a mapping once parsed, as clients read it); the other
            # kinds (HTML, Prometheus text) are text.
            kind = "object" if op.content_type.endswith("yaml") else "string"
            entry["content"] = {op.content_type: {"schema": {"type": kind}}}
        responses[str(status)] = entry
    if op.write:
        accepted = components.ref(Accepted, "serialization")
        own = responses.get("202", {}).get("content", {}).get("application/json")
        # A write whose own answer is a 202 (a generation job) may also be the write's
        # "not finished within the wait" 202: either body.
        schema = {"anyOf": [own["schema"], accepted]} if own else accepted
        responses["202"] = {
            "description": "Recorded and enqueued, not finished within the wait; poll `Location`"
            + ("; or the operation's own 202" if own else ""),
            "content": {"application/json": {"schema": schema}},
        }
    errors = {400, 422, 503} if (op.body or op.query or op.write) else {503}
    if op.write:
        errors |= {409}
    if op.body is not None:
        errors |= {413, 415}
    if not access.public:
        errors |= {401, 403}
    if "{" in path or _names_ids(op.body) or _names_ids(op.query):
        errors |= {404}
    for status in sorted(errors | {429}):
        responses.setdefault(str(status), _problem(components, _ERRORS[status]))
    result: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{method}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "parameters": params,
        "responses": responses,
    }
    if not access.public:
        result["security"] = [{"bearer": []}]
        result["description"] = "Roles: " + "; ".join(
            f"{role} ({access.grants[role].scope})" for role in access.roles()
        )
        result["x-roles"] = list(access.roles())
    if op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.ref(op.body, "validation")}},
        }
    return result


def build_spec(routes: Iterable[tuple[str, object, str | None]], version: str) -> dict[str, Any]:
    components = _Components()
    paths: dict[str, Any] = {}
    for path, resource, suffix in routes:
        for method, op in operations(resource, suffix):
            if op is None:
                raise ValueError(f"{method.upper()} {path} has no @doc: document every route")
            access = ACCESS.get((path, method.upper()))
            if access is None:
                raise ValueError(f"{method.upper()} {path} is not in api.access.ACCESS")
            paths.setdefault(path, {})[method] = _operation(components, path, method, op, access)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hair Stylist Scheduler API",
            "version": version,
            "description": (
                "Writes are recorded under an Idempotency-Key, executed by a queue worker, and "
                "answered within a bounded wait (else 202 + Location: /v1/requests/{id}). "
                "Errors are application/problem+json (RFC 9457)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
