"""The app factory. `get_app()` is what gunicorn serves (`api.app:get_app()`)."""

from __future__ import annotations

import gc
import json
from functools import partial
from importlib import metadata
from typing import Any

import falcon

from api import errors
from api.client_address import ClientAddress
from api.errors import PROBLEM_JSON
from api.middleware.access import AccessMiddleware
from api.middleware.authentication import AuthMiddleware
from api.middleware.cors import CorsMiddleware, CorsPolicy
from api.middleware.metrics import MetricsMiddleware
from api.middleware.rate_limit import RateLimitMiddleware
from api.middleware.request_log import RequestIdMiddleware
from api.middleware.security_headers import SecurityHeadersMiddleware
from api.openapi import build_spec
from api.resources import (
    audit,
    bookings,
    catalogue,
    docs,
    health,
    public_times,
    requests,
    rules,
    schedule,
    slots,
)
from api.resources.metrics import Metrics
from api.slots_entrance import SlotsEntrance
from salon.auth import startup_refusal
from salon.bootstrap import Container, bootstrap
from salon.encoding import json_default
from salon.public_times.exposures import ExposureService
from salon.public_times.stored_answers import StoredAnswers
from salon.settings import Settings

Route = tuple[str, object, str | None]


def routes(container: Container, reads: StoredAnswers) -> list[Route]:
    c = container
    return [
        ("/healthz", health.Healthz(), None),
        ("/readyz", health.Readyz(c), None),
        ("/metrics", Metrics(c.settings.metrics_token), None),
        ("/v1/locations", catalogue.PublicLocations(c), None),
        ("/v1/locations/{location_id}/services", catalogue.PublicLocationServices(c), None),
        ("/v1/locations/{location_id}/stylists", catalogue.PublicLocationStylists(c), None),
        ("/v1/dates", public_times.Dates(c, reads), None),
        ("/v1/slots", public_times.Slots(c, reads), None),
        ("/v1/bookings", bookings.Bookings(c), None),
        ("/v1/bookings/{booking_id}", bookings.Booking(c), None),
        ("/v1/bookings/{booking_id}/confirm", bookings.ConfirmBooking(c), None),
        ("/v1/bookings/{booking_id}/cancel", bookings.CancelBooking(c), None),
        ("/v1/bookings/{booking_id}/reschedule", bookings.RescheduleBooking(c), None),
        ("/v1/requests/{request_id}", requests.WriteRequestResource(c), None),
        ("/admin/v1/locations", catalogue.AdminLocations(c), None),
        ("/admin/v1/locations/{location_id}", catalogue.AdminLocation(c), None),
        ("/admin/v1/stylists", catalogue.AdminStylists(c), None),
        ("/admin/v1/stylists/{stylist_id}", catalogue.AdminStylist(c), None),
        ("/admin/v1/services", catalogue.AdminServices(c), None),
        ("/admin/v1/services/{service_id}", catalogue.AdminService(c), None),
        ("/admin/v1/availabilities", rules.Availabilities(c), None),
        ("/admin/v1/availabilities/{rule_id}", rules.Availability(c), None),
        ("/admin/v1/slots/generate", slots.GenerateSlots(c), None),
        ("/admin/v1/slots", slots.Slots(c), None),
        ("/admin/v1/jobs/{job_id}", slots.Job(c), None),
        ("/admin/v1/exposures", public_times.ExposureLedger(c, reads), None),
        ("/admin/v1/bookings", bookings.AdminBookings(c), None),
        ("/admin/v1/bookings/{booking_id}", bookings.AdminBooking(c), None),
        ("/admin/v1/schedule", schedule.Schedule(c), None),
        ("/admin/v1/audit", audit.AuditTrail(c), None),
    ]


def _version() -> str:
    try:
        return metadata.version("hair-salon-scheduler")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(
    container: Container, reads: StoredAnswers | None = None
) -> falcon.App[falcon.Request, falcon.Response]:
    """The Falcon app alone. `reads`: the process's public-read caches (a new one if None)."""
    settings = container.settings
    middleware: list[Any] = [
        MetricsMiddleware(),
        RequestIdMiddleware(),
        SecurityHeadersMiddleware(),
        CorsMiddleware(CorsPolicy(settings.cors_origins)),
        AuthMiddleware(container),
        # After authentication (it counts by principal), before routing (404s count too).
        RateLimitMiddleware(container, ClientAddress(settings.trusted_proxies)),
        AccessMiddleware(),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    json_handler = falcon.media.JSONHandler(dumps=partial(json.dumps, default=json_default))
    app.resp_options.media_handlers.update(
        {falcon.MEDIA_JSON: json_handler, PROBLEM_JSON: json_handler}
    )
    errors.register(app)
    spec: dict[str, object] = {}  # filled below: the docs routes describe themselves too
    table = [
        *routes(container, reads or StoredAnswers(container)),
        ("/openapi.yaml", docs.OpenApiYaml(spec), None),
        ("/openapi.json", docs.OpenApiJson(spec), None),
        ("/docs", docs.HtmlPage(docs.SWAGGER_PAGE), None),
        ("/redoc", docs.HtmlPage(docs.REDOC_PAGE), None),
    ]
    spec.update(build_spec(table, _version()))
    for path, resource, suffix in table:
        app.add_route(path, resource, suffix=suffix) if suffix else app.add_route(path, resource)
    app.add_static_route("/static", str(docs.STATIC))
    return app


def wsgi_app(container: Container) -> SlotsEntrance:
    """What is served: the Falcon app behind the layer that answers repeated exposures."""
    reads = StoredAnswers(container)
    return SlotsEntrance(create_app(container, reads), container, ExposureService(container, reads))


def api_container(settings: Settings) -> Container:
    """The API's parts: its enqueue waits for Redis no longer than its other calls do, and
    after one call timed out its calls fail at once for a while (`salon.infra.redis_breaker`), so a
    frozen Redis costs a write a fast 202 (recorded, re-sent later) and a read about one
    Redis timeout, never a hang."""
    return bootstrap(
        settings, broker_timeout_seconds=settings.redis_timeout_seconds, redis_breaker=True
    )


def get_app() -> SlotsEntrance:
    from salon.infra.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level, json_logs=settings.log_json)
    # Also when gunicorn is started without `salon api`: a worker that raises never boots.
    refusal = startup_refusal(settings)
    if refusal is not None:
        raise SystemExit(f"refusing to start: {refusal}")
    app = wsgi_app(api_container(settings))
    # What exists now (modules, the app, its routes) lives as long as the process: full
    # collections need not walk it again (~110,000 objects, 50 ms of pause each; see
    # docs/performance.md, "Garbage collection pauses").
    gc.collect()
    gc.freeze()
    return app
