"""The edge as a user meets it, through the real `salon` processes and gunicorn: the
production processes refuse a known secret, gunicorn's own errors are problem+json, and a
chunked body is read."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import token_for
from tests.e2e.conftest import free_port

PROCESSES = [["api", "--port", "0"], ["worker"], ["scheduler"]]


@pytest.mark.parametrize("args", PROCESSES, ids=lambda a: a[0])
@pytest.mark.parametrize("secret", [None, "changeme", "short-but-not-a-placeholder"])
def test_a_production_process_refuses_a_known_or_weak_secret(args, secret):
    env = {k: v for k, v in os.environ.items() if k not in ("SALON_DEV", "JWT_SECRET")}
    env["DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never reached
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    if secret is not None:
        env["JWT_SECRET"] = secret
    if args[0] == "api":
        args = ["api", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "salon", *args], env=env, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"refusing to start" in done.stderr and b"JWT_SECRET" in done.stderr


def raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
            + b"\r\n",
            431,
        ),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["long-request-line", "large-header", "too-many-headers", "bad-version"],
)
def test_gunicorns_own_errors_are_problem_json(system, request_bytes, status):
    code, headers, body = raw(system.base, request_bytes)
    assert code == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].startswith("https://")


def test_a_chunked_patch_changes_what_it_says(system, settings, e2e_tenant):
    admin = {"Authorization": f"Bearer {token_for(settings, 'admin', e2e_tenant)}"}
    parts = urlsplit(system.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def send(method: str, path: str, body: bytes | None, chunked: bool = False) -> tuple[int, dict]:
        headers = {**admin, "Content-Type": "application/json"}
        if method != "GET":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        conn.request(
            method,
            path,
            body=iter([body]) if chunked else body,
            headers=headers,
            encode_chunked=chunked,
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")

    status, created = send("POST", "/admin/v1/locations", b'{"name": "Before", "timezone": "UTC"}')
    assert status == 201, system.logs()
    path = f"/admin/v1/locations/{created['id']}"
    status, patched = send("PATCH", path, b'{"name": "After"}', chunked=True)
    assert status == 200, patched
    assert patched["name"] == "After"
    assert send("GET", path, None)[1]["name"] == "After"
    conn.close()


@pytest.mark.parametrize("args", PROCESSES, ids=lambda a: a[0])
def test_a_production_process_refuses_to_start_without_pii_keys(args):
    env = {k: v for k, v in os.environ.items() if k not in ("SALON_DEV", "PII_KEYS")}
    env["DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never reached
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    env["JWT_SECRET"] = "0123456789abcdef" * 4
    if args[0] == "api":
        args = ["api", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "salon", *args], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"refusing to start" in done.stderr and b"PII_KEYS" in done.stderr
