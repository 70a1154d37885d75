"""SQLAlchemy 2 tables of the `scheduler` schema.

The migrations in `models/migrations` are the source of truth for the database; these models
mirror them so the code can query. `tests/integration/test_schema.py` checks they agree.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from models.ids import new_id

SCHEMA = "scheduler"

BOOKING_STATUSES = ("held", "confirmed", "completed", "cancelled", "expired", "no_show")
LIVE_BOOKING_STATUSES = ("held", "confirmed")
RULE_KINDS = ("WEEKLY", "DATE_RANGE", "EXCEPTION")
WRITE_STATUSES = ("pending", "succeeded", "failed")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "%(table_name)s_pkey",
            "fk": "%(table_name)s_%(column_0_name)s_fkey",
            "uq": "%(table_name)s_%(column_0_name)s_key",
            "ck": "%(table_name)s_%(constraint_name)s_check",
            "ix": "%(table_name)s_%(column_0_name)s_idx",
        }
    )
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


# Shared tables owned by other systems of the brand; the migration creates minimal stand-ins
# only where they do not exist.
class BizEntity(Base):
    __tablename__ = "biz_entity"
    __table_args__ = {"schema": "public"}
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)


class AuthUser(Base):
    __tablename__ = "auth_user"
    __table_args__ = {"schema": "public"}
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(Text)


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[uuid.UUID] = _id()
    biz_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("public.biz_entity.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Stylist(Base):
    __tablename__ = "stylists"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[uuid.UUID] = _id()
    biz_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("public.biz_entity.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class StylistLocation(Base):
    __tablename__ = "stylist_locations"
    __table_args__ = {"schema": SCHEMA}
    stylist_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.stylists.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.locations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("buffer_minutes >= 0", name="buffer_not_negative"),
        {"schema": SCHEMA},
    )
    id: Mapped[uuid.UUID] = _id()
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.locations.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    buffer_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ServiceStylist(Base):
    """Who offers a service (no rows = every stylist of the location), with duration override."""

    __tablename__ = "service_stylists"
    __table_args__ = (
        CheckConstraint("duration_minutes IS NULL OR duration_minutes > 0", name="override"),
        {"schema": SCHEMA},
    )
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.services.id", ondelete="CASCADE"), primary_key=True
    )
    stylist_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.stylists.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    duration_minutes: Mapped[int | None] = mapped_column(Integer)


class AvailabilityRule(Base):
    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint(f"rule_kind IN {RULE_KINDS!r}", name="rule_kind"),
        CheckConstraint("slot_granularity_minutes > 0", name="granularity"),
        {"schema": SCHEMA},
    )
    id: Mapped[uuid.UUID] = _id()
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.locations.id"), index=True)
    stylist_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.stylists.id"), index=True
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.services.id"))
    rule_kind: Mapped[str] = mapped_column(Text)
    days_of_week: Mapped[list[int] | None] = mapped_column(ARRAY(SmallInteger))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    slot_granularity_minutes: Mapped[int] = mapped_column(SmallInteger, server_default="15")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    is_closed: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class SlotInstance(Base):
    """A generated bookable start time of one stylist (UTC), computed in the location's zone."""

    __tablename__ = "slot_instances"
    __table_args__ = (
        # One stylist cannot have two slots starting at the same instant, at any location.
        UniqueConstraint("stylist_id", "start_at", name="slot_instances_stylist_start_key"),
        CheckConstraint("end_at > start_at", name="ordered"),
        CheckConstraint("status IN ('open', 'blocked')", name="status"),
        {"schema": SCHEMA},
    )
    id: Mapped[uuid.UUID] = _id()
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.locations.id"))
    stylist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.stylists.id"))
    local_date: Mapped[date] = mapped_column(Date)
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(Text, server_default="open")
    created_at: Mapped[datetime] = _created()


class Booking(Base):
    """A customer's claim on `[start_at, end_at)` of one stylist.

    The exclusion constraint `bookings_no_overlap` (created in the migration) makes two live
    bookings of a stylist that overlap impossible, whatever the number of workers.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(f"status IN {BOOKING_STATUSES!r}", name="status"),
        CheckConstraint("end_at > start_at", name="ordered"),
        {"schema": SCHEMA},
    )
    id: Mapped[uuid.UUID] = _id()
    biz_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("public.biz_entity.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.locations.id"))
    stylist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.stylists.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.services.id"))
    slot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.slot_instances.id", ondelete="SET NULL")
    )
    # Indexed with start_at, and for held rows alone (migrations 0003, 0008).
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    customer_name: Mapped[str] = mapped_column(Text)
    # Sealed (`kid:nonce:ciphertext`, salon.infra.pii) under the key `pii_kid`; a row whose
    # pii_kid is NULL predates encryption and is clear until `salon pii rotate` (migration 0010).
    customer_phone: Mapped[str] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    pii_kid: Mapped[str | None] = mapped_column(Text)
    # HMAC-SHA256 of the normalised phone / lowercased email: staff's search.
    customer_phone_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    customer_email_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    source: Mapped[str | None] = mapped_column(Text)
    consent: Mapped[dict[str, Any] | None] = mapped_column()
    status: Mapped[str] = mapped_column(Text)
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime] = mapped_column()
    hold_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    confirmed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    service_minutes: Mapped[int | None] = mapped_column(Integer)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_by: Mapped[str | None] = mapped_column(Text)
    rescheduled_from: Mapped[datetime | None] = mapped_column()


class WriteRequest(Base):
    """A write request: the idempotency record and the enqueued write it stands for (one row
    per principal and key; the table keeps its first name, `idempotency_keys`).

    The API inserts it before enqueueing; the actor runs the write and stores the response in
    the same transaction, so a redelivered message finds it done and changes nothing.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("principal", "key", name="idempotency_keys_principal_key_key"),
        CheckConstraint(f"status IN {WRITE_STATUSES!r}", name="status"),
        {
            "schema": SCHEMA,
            "comment": "Write requests: one row per (principal, Idempotency-Key), recorded by the"
            " API before its message is enqueued; the worker stores the outcome in the same"
            " transaction as the write.",
        },
    )
    id: Mapped[uuid.UUID] = _id()
    principal: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    location: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")  # sends
    failures: Mapped[int] = mapped_column(Integer, server_default="0")  # crashed executions
    created_at: Mapped[datetime] = _created()
    enqueued_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class OutboxEvent(Base):
    """State changes written in the same transaction as the change, for notifiers and audit."""

    __tablename__ = "outbox_events"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    aggregate_id: Mapped[uuid.UUID] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    published_at: Mapped[datetime | None] = mapped_column()


class AuditEvent(Base):
    """A staff write: who (sub, role), what (the operation, its object), when, under which
    request, and the changed fields before and after (PII masked). Written in the write's own
    transaction (salon.write_path.audit); purged after AUDIT_RETENTION_DAYS."""

    __tablename__ = "audit_events"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[uuid.UUID] = _id()
    at: Mapped[datetime] = _created()
    biz_entity_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_sub: Mapped[uuid.UUID] = mapped_column()
    actor_role: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str] = mapped_column(Text)
    object_id: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(Text)
    write_id: Mapped[uuid.UUID | None] = mapped_column()
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()


class SchedulerJobRun(Base):
    """When each periodic job last fired, and from which scheduler process (for operators)."""

    __tablename__ = "scheduler_job_runs"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(Text, index=True)
    instance: Mapped[str] = mapped_column(Text)
    fired_at: Mapped[datetime] = _created()
    detail: Mapped[dict[str, Any] | None] = mapped_column()


class GenerationJob(Base):
    """A request to turn rules into slots over a date range, worked in chunks by the workers."""

    __tablename__ = "generation_jobs"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[uuid.UUID] = _id()
    biz_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("public.biz_entity.id"))
    requested_by: Mapped[str] = mapped_column(Text)
    location_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.locations.id"))
    stylist_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default="false")
    status: Mapped[str] = mapped_column(Text, server_default="queued")
    chunks_total: Mapped[int | None] = mapped_column(Integer)
    chunks_done: Mapped[int] = mapped_column(Integer, server_default="0")
    created: Mapped[int] = mapped_column(Integer, server_default="0")
    removed: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped: Mapped[int] = mapped_column(Integer, server_default="0")
    conflicts: Mapped[int] = mapped_column(Integer, server_default="0")
    conflict_details: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = _created()


class GenerationChunk(Base):
    __tablename__ = "generation_chunks"
    __table_args__ = {"schema": SCHEMA}
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.generation_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    stylist_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    location_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    created: Mapped[int] = mapped_column(Integer)
    removed: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    conflicts: Mapped[int] = mapped_column(Integer)
    done_at: Mapped[datetime] = _created()
    # Assigned at insert, under the stylist's lock: the order chunks changed the slots in.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default="false")
    fingerprint: Mapped[str | None] = mapped_column(Text)
    wanted: Mapped[int | None] = mapped_column(Integer)
