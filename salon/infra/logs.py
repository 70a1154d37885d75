"""JSON structured logs carrying the request id of whatever is being done.

The request id lives in a context variable: the API middleware sets it from `X-Request-Id`,
the Dramatiq middleware from the message's options, so one id follows a write end to end.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Customers' phone numbers and emails are PII: never written to logs in clear. Every spelling
# the API accepts is caught: any non-space local part (`o'brien+tag@...`); 7-15 digits with up
# to three separators between them (`+1 (555) 123-4567`, `+1/555/123/4567`, `555.123.4567`).
_ADDRESS_CHAR = r"[^\s@<>()\[\]{},;:\"]"
_EMAIL = re.compile(rf"({_ADDRESS_CHAR}){_ADDRESS_CHAR}*@({_ADDRESS_CHAR}+)")
# Not inside an id, a time or a number with a decimal point (the look-arounds), and not a
# date, an IPv4 address or a decimal (what else in a log line is that many digits with separators).
_PHONE = re.compile(
    r"(?<![\w:./+-])"
    r"(?!\d{4}-\d{2}-\d{2}(?!\d))(?!\d{1,3}(?:\.\d{1,3}){3}(?!\d))"
    r"(?!\d+\.\d+(?![ \t()./-]{0,3}\d))"
    r"\+?\(?\d(?:[ \t()./-]{0,3}\d){6,14}"
    r"(?![\w:/-]|\.\d)"
)


def mask_pii(text: str) -> str:
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + m.group(0)[-2:], text)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in doc:
                doc[key] = (
                    value if isinstance(value, int | float | bool | None) else mask_pii(str(value))
                )
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = mask_pii(self.formatStack(record.stack_info))
        return json.dumps(doc, default=str)

    def formatException(self, ei: Any) -> str:
        # A traceback quotes the exception's message and may quote source lines: masked too.
        return mask_pii(super().formatException(ei))


class MaskingFormatter(logging.Formatter):
    """Plain-text lines (LOG_JSON=false), masked whole: message, traceback and stack."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_pii(super().format(record))

    def formatException(self, ei: Any) -> str:
        return mask_pii(super().formatException(ei))


def configure(level: str = "INFO", *, json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            MaskingFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
