"""The one settings object, read from environment variables.

Every knob has a default that works for `salon dev`; `docs/configuration.md` and the README
table list them. Nothing here connects to anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123456789"


def _bool(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # Empty URLs mean "use the embedded servers" (only `salon dev` and the tests start them).
    database_url: str = field(default="", metadata={"env": "DATABASE_URL"})
    redis_url: str = field(default="", metadata={"env": "REDIS_URL"})
    # Prefix of every Redis key and of Dramatiq's queues, so test runs never collide.
    redis_namespace: str = field(default="salon", metadata={"env": "REDIS_NAMESPACE"})
    jwt_secret: str = field(default=DEV_JWT_SECRET, metadata={"env": "JWT_SECRET"})
    jwt_public_key: str = field(default="", metadata={"env": "JWT_PUBLIC_KEY"})
    jwt_issuer: str = field(default="", metadata={"env": "JWT_ISSUER"})
    jwt_audience: str = field(default="", metadata={"env": "JWT_AUDIENCE"})
    # A token may live this long at most (`exp - iat`, or `exp - now` without `iat`); 0: no cap.
    jwt_max_lifetime_seconds: int = field(
        default=86400, metadata={"env": "JWT_MAX_LIFETIME_SECONDS"}
    )
    # Development mode (`salon dev` sets it): the processes accept the development JWT secret,
    # and published development PII keys stand in for missing ones (salon.infra.pii).
    dev: bool = field(default=False, metadata={"env": "SALON_DEV"})
    # Customers' PII at rest (salon.infra.pii, docs/security.md): `kid:base64key,...`, 32-byte
    # AES keys, the first encrypts, all decrypt; and the HMAC key of the search hashes.
    pii_keys: str = field(default="", repr=False, metadata={"env": "PII_KEYS"})
    pii_hash_key: str = field(default="", repr=False, metadata={"env": "PII_HASH_KEY"})
    # Staff writes' audit rows older than this are purged (hourly).
    audit_retention_days: int = field(default=365, metadata={"env": "AUDIT_RETENTION_DAYS"})
    # The scheduler keeps every active stylist's slots generated this many days ahead.
    horizon_days: int = field(default=60, metadata={"env": "HORIZON_DAYS"})
    # A generation chunk is one stylist at one location for this many weeks (one transaction).
    generation_chunk_weeks: int = field(default=13, metadata={"env": "GENERATION_CHUNK_WEEKS"})
    min_notice_minutes: int = field(default=120, metadata={"env": "MIN_NOTICE_MINUTES"})
    # Staff booking on a customer's behalf (a walk-in) may take a start inside the notice.
    staff_skip_notice: bool = field(default=False, metadata={"env": "STAFF_SKIP_NOTICE"})
    booking_horizon_days: int = field(default=90, metadata={"env": "BOOKING_HORIZON_DAYS"})
    exposure_ttl_seconds: int = field(default=420, metadata={"env": "EXPOSURE_TTL_SECONDS"})
    max_holds_per_customer: int = field(default=3, metadata={"env": "MAX_HOLDS_PER_CUSTOMER"})
    cancel_cutoff_hours: int = field(default=24, metadata={"env": "CANCEL_CUTOFF_HOURS"})
    hold_ttl_seconds: int = field(default=600, metadata={"env": "HOLD_TTL_SECONDS"})
    api_wait_seconds: float = field(default=5.0, metadata={"env": "API_WAIT_SECONDS"})
    api_max_wait_seconds: float = field(default=30.0, metadata={"env": "API_MAX_WAIT_SECONDS"})
    # Writes one API process lets wait their whole wait at once (each holds a thread); at most
    # API_THREADS - 1. Others wait only while the workers answer (salon.write_path.waits).
    api_waiting_writes: int = field(default=4, metadata={"env": "API_WAITING_WRITES"})
    # A database or Redis call must fail fast enough that the API answers 503 within 2 s.
    db_connect_timeout_seconds: int = field(default=1, metadata={"env": "DB_CONNECT_TIMEOUT"})
    db_statement_timeout_ms: int = field(default=1500, metadata={"env": "DB_STATEMENT_TIMEOUT_MS"})
    db_pool_size: int = field(default=5, metadata={"env": "DB_POOL_SIZE"})
    redis_timeout_seconds: float = field(default=0.5, metadata={"env": "REDIS_TIMEOUT"})
    max_body_bytes: int = field(default=65536, metadata={"env": "MAX_BODY_BYTES"})
    idempotency_ttl_hours: int = field(default=48, metadata={"env": "IDEMPOTENCY_TTL_HOURS"})
    # A pending write not finished this long after it was (re)enqueued is sent again.
    redeliver_after_seconds: int = field(default=30, metadata={"env": "REDELIVER_AFTER_SECONDS"})
    write_max_attempts: int = field(default=10, metadata={"env": "WRITE_MAX_ATTEMPTS"})
    broker_heartbeat_ms: int = field(default=10000, metadata={"env": "BROKER_HEARTBEAT_MS"})
    worker_processes: int = field(default=2, metadata={"env": "WORKER_PROCESSES"})
    worker_threads: int = field(default=8, metadata={"env": "WORKER_THREADS"})
    api_workers: int = field(default=2, metadata={"env": "API_WORKERS"})
    api_threads: int = field(default=8, metadata={"env": "API_THREADS"})
    scheduler_tick_seconds: int = field(default=5, metadata={"env": "SCHEDULER_TICK_SECONDS"})
    # PostgreSQL ends the scheduler leader's lock session after this long without a word from
    # it (a frozen or cut-off leader), so a standby takes over; the leader speaks every quarter.
    scheduler_lease_seconds: float = field(
        default=10.0, metadata={"env": "SCHEDULER_LEASE_SECONDS"}
    )
    # Requests per caller (token, else client address) and minute, per route class; reads'
    # limit at 0 turns every class off.
    rate_limit_per_minute: int = field(default=600, metadata={"env": "RATE_LIMIT_PER_MINUTE"})
    rate_limit_booking_writes_per_minute: int = field(
        default=10, metadata={"env": "RATE_LIMIT_BOOKING_WRITES_PER_MINUTE"}
    )
    rate_limit_admin_writes_per_minute: int = field(
        default=120, metadata={"env": "RATE_LIMIT_ADMIN_WRITES_PER_MINUTE"}
    )
    # Comma-separated CIDRs of the reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: str = field(default="", metadata={"env": "TRUSTED_PROXIES"})
    # Comma-separated origins a browser may call the public API from ("*": any); never /admin.
    cors_origins: str = field(default="", metadata={"env": "CORS_ORIGINS"})
    # Bearer token /metrics asks for; without one, /metrics answers only loopback callers.
    metrics_token: str = field(default="", metadata={"env": "METRICS_TOKEN"})
    data_dir: str = field(default=".salon", metadata={"env": "SALON_DATA_DIR"})
    log_level: str = field(default="INFO", metadata={"env": "LOG_LEVEL"})
    log_json: bool = field(default=True, metadata={"env": "LOG_JSON"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            kind: Any = type(f.default)
            values[f.name] = _bool(raw) if kind is bool else kind(raw)
        values.update(overrides)
        return cls(**values)

    def waiting_writes(self) -> int:
        """How many writes one API process lets wait their whole wait at once: fewer than
        its threads, so that with the workers stopped a read still finds a thread."""
        return max(0, min(self.api_waiting_writes, self.api_threads - 1))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @staticmethod
    def documented() -> list[tuple[str, str, str]]:
        """(variable, default, field) rows for the README's configuration table."""
        return [(f.metadata["env"], repr(f.default), f.name) for f in fields(Settings)]
