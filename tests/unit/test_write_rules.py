from __future__ import annotations

import json
import logging
import uuid

import falcon
from falcon import testing

from api.writes import wait_seconds
from salon.auth import Principal
from salon.infra.logs import JsonFormatter, RequestIdFilter, mask_pii, request_id_var
from salon.write_path.model import NewWriteRequest

P = Principal(uuid.uuid4(), "admin", uuid.uuid4())


def cmd(body: dict, path: str = "/admin/v1/locations") -> NewWriteRequest:
    return NewWriteRequest("location.create", P, "k", "POST", path, body)


def test_the_fingerprint_ignores_key_order_but_not_content_or_target():
    assert cmd({"a": 1, "b": 2}).fingerprint() == cmd({"b": 2, "a": 1}).fingerprint()
    assert cmd({"a": 1}).fingerprint() != cmd({"a": 2}).fingerprint()
    assert cmd({"a": 1}).fingerprint() != cmd({"a": 1}, "/admin/v1/stylists").fingerprint()


def _req(prefer: str | None) -> falcon.Request:
    headers = {"Prefer": prefer} if prefer else {}
    return falcon.Request(testing.create_environ(headers=headers))


def test_prefer_header_bounds_the_wait():
    assert wait_seconds(_req(None), 5, 30) == 5
    assert wait_seconds(_req("wait=2"), 5, 30) == 2
    assert wait_seconds(_req("return=minimal, wait=100"), 5, 30) == 30
    assert wait_seconds(_req("respond-async"), 5, 30) == 0
    assert wait_seconds(_req("respond-async, wait=10"), 5, 30) == 0


def test_log_lines_are_json_with_the_request_id_and_no_pii():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "call +44 20 7946 0958 or ana.lopez@example.com", None, None
    )
    token = request_id_var.set("req-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["request_id"] == "req-123"
    assert "7946" not in doc["msg"] and "ana.lopez" not in doc["msg"]
    assert "example.com" in doc["msg"]


def test_mask_pii_keeps_uuids_and_times_readable():
    text = "booking 0192a3b4-0000-7000-8000-000000000001 at 2026-03-29T10:00:00Z"
    assert mask_pii(text) == text
