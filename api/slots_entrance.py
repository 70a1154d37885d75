"""Repeated /v1/slots asks, answered before Falcon sees them.

Most of what a customer's app sends is a repeat: the same ask within its exposure's TTL, answered
with the stored bytes (`salon.public_times.stored_answers`). Building Falcon's request and response
and running four middlewares costs more CPU than that answer (docs/performance.md), so a repeat in
its plain form (a session id or a valid token, the canonical query, a known variant) is answered
here, with the same headers, metrics, access log and rate limit as the full path. A miss in that
form (a new ask) is chosen here too, by the same call the resource makes. Anything else goes on to
Falcon, carrying what the lookup found so the ask is not looked up twice, and so does a failure,
which Falcon's error handlers answer as a problem. Falling through is always safe: the full path
gives the same answer."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from api.client_address import ClientAddress
from api.middleware.cors import CorsPolicy
from api.middleware.metrics import REQUEST_SECONDS
from api.middleware.rate_limit import ENV_RATE_COUNT, READS, rate_key
from api.middleware.request_log import ENV_REQUEST_ID, ENV_STARTED, log_access, request_id
from api.middleware.security_headers import security_headers
from api.resources.public_times import ENV_FAILURE, ENV_LOOKUP, SESSION_COOKIE, session_id_of
from models.exposure import VARIANTS
from salon.auth import InvalidToken, decode_token
from salon.bootstrap import Container
from salon.infra.logs import request_id_var
from salon.public_times.exposures import ExposureService

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PATH = "/v1/slots"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COOKIE = re.compile(rf"(?:^|;)\s*{SESSION_COOKIE}=([^;]*)")
_QUERY_FIELDS = frozenset({"date", "location_id", "service_id", "stylist_id"})
_OK = "200 OK"


def plain_query(query: str) -> dict[str, str] | None:
    """The ask's parameters when the query string is in the form apps send (each known field
    once, no encoding, canonical ids and date), else None (Falcon and pydantic decide)."""
    fields: dict[str, str] = {}
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if not sep or not value or name not in _QUERY_FIELDS or name in fields:
            return None
        fields[name] = value
    if not {"date", "location_id", "service_id"} <= fields.keys():
        return None
    if not _DATE.match(fields["date"]):
        return None
    try:
        dt.date.fromisoformat(fields["date"])
    except ValueError:
        return None
    for name in ("location_id", "service_id", "stylist_id"):
        if name in fields:
            if not _UUID.match(fields[name]):
                return None
            fields[name] = fields[name].lower()
    return fields


def cookie_session(cookie_header: str | None) -> str | None:
    """The first `salon_sid` cookie's value, as Falcon's `req.cookies` would give it."""
    if not cookie_header:
        return None
    found = _COOKIE.search(cookie_header)
    return found.group(1).strip() if found else None


class SlotsEntrance:
    """WSGI layer in front of the Falcon app: answers repeated exposures from Redis."""

    def __init__(self, app: WSGIApp, container: Container, exposures: ExposureService) -> None:
        self.app = app
        self.settings = container.settings
        self.exposures = exposures
        self.rate_prefix = f"{container.settings.redis_namespace}:rate"
        self.rate_limit = container.settings.rate_limit_per_minute
        # The middlewares' own policies, so an answer given here is counted and headed alike.
        self.client = ClientAddress(container.settings.trusted_proxies)
        self.cors = CorsPolicy(container.settings.cors_origins)
        self.metric = REQUEST_SECONDS.labels(PATH, "GET", "200")
        self.clock = container.clock

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        started = time.perf_counter()
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENV_STARTED], environ[ENV_REQUEST_ID] = started, rid
        request_id_var.set(rid)  # what a new ask logs carries it
        try:
            answer = self._answer(environ)
        finally:
            request_id_var.set(None)
        if answer is None:
            return self.app(environ, start_response)
        body, headers = answer
        headers.append(("X-Request-Id", rid))
        headers += security_headers("HTTP_AUTHORIZATION" in environ)
        headers += self.cors.headers(PATH, environ.get("HTTP_ORIGIN"))
        start_response(_OK, headers)
        elapsed = time.perf_counter() - started
        self.metric.observe(elapsed)
        request_id_var.set(rid)
        log_access("GET", PATH, _OK, round(elapsed * 1000, 2))
        request_id_var.set(None)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[bytes, list[tuple[str, str]]] | None:
        """The stored answer and its headers, or None to let Falcon answer."""
        fields = plain_query(environ.get("QUERY_STRING", ""))
        variant = str(environ.get("HTTP_X_EXPOSURE_VARIANT") or "balanced").lower()
        if fields is None or variant not in VARIANTS:
            return None
        headers = [("Content-Type", "application/json"), ("X-Exposure-Variant", variant)]
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization:
            scheme, _, token = str(authorization).partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            try:
                principal = decode_token(self.settings, token.strip())
            except InvalidToken:
                return None  # Falcon answers 401
            subject, who = f"user:{principal.sub}", principal.key
        else:
            given = environ.get("HTTP_X_SESSION_ID") or cookie_session(environ.get("HTTP_COOKIE"))
            session_id = session_id_of(given)
            if session_id is None:
                return None  # a new session gets its cookie from the full path
            subject, who = f"session:{session_id}", self.client.address(environ)
            headers.append(("X-Session-Id", session_id))
        stylist = fields.get("stylist_id")
        # The fields are canonical text (`plain_query`), as the key spells them: a repeat needs
        # no UUID or date objects.
        key = self.exposures.key_of(
            subject, fields["location_id"], fields["service_id"], stylist, fields["date"], variant
        )
        counted = self.rate_limit > 0
        now = time.time()  # the rate window, as the middleware counts it
        at = self.clock.now()
        found = self.exposures.reads.lookup(
            key,
            at,
            rate_key(self.rate_prefix, READS, who, now) if counted else None,
        )
        environ[ENV_LOOKUP] = (key, found)
        if found.rate_count is not None:
            environ[ENV_RATE_COUNT] = found.rate_count
            if found.rate_count > self.rate_limit:
                return None  # Falcon's middleware answers 429 from the count
        answer = found.answer
        if answer is None:
            # A new ask: chosen here as Falcon's resource would (same call, same lookup).
            try:
                answer = self.exposures.exposure(
                    subject=subject,
                    location_id=uuid.UUID(fields["location_id"]),
                    service_id=uuid.UUID(fields["service_id"]),
                    stylist_id=uuid.UUID(stylist) if stylist else None,
                    day=dt.date.fromisoformat(fields["date"]),
                    variant=variant,
                    now=at,
                    looked_up=(key, found),
                )
            except Exception as exc:  # Falcon's error handlers answer it
                environ[ENV_FAILURE] = exc
                return None
        headers.append(("Content-Length", str(len(answer))))
        return answer, headers
