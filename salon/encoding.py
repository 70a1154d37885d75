"""Turning service results into JSON-ready values (stored in JSONB and sent over HTTP)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any


def rfc3339(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: every time in this system is timezone-aware")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def json_default(value: Any) -> Any:
    """`default=` for json.dumps: the same conversions as `jsonable`, one value at a time."""
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return converted
