"""The audit trail of staff writes: who (sub, role), what (the operation, its object), when,
under which request, and the fields it changed, before and after.

Generic in the write path: `execute` reads the object's representation before an operation
run by staff (`Operation.before`, when it names one) and takes the operation's answer as the
after; both are compared field by field, and the row goes in the write's own transaction, so
a write and its audit row commit or vanish together. PII never enters it: phone, email and
notes are masked (salon.infra.pii). Any operation, even one without a `before`, is audited
when staff run it (its object from the request's `*_id` or the answer's `id`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models.ids import new_id
from models.tables import AuditEvent
from salon.auth import STAFF_ROLES, Principal
from salon.encoding import jsonable
from salon.errors import DomainError
from salon.infra.pii import mask_paths
from salon.write_path.model import Operation, WriteContext, WriteOutcome


def audited(ctx: WriteContext) -> bool:
    return ctx.principal.role in STAFF_ROLES


def read_before(session: Session, op: Operation, ctx: WriteContext) -> dict[str, Any] | None:
    """The object as it is before the write, or None (a create; or not the principal's: the
    operation itself then refuses). Read without locks (taking a booking's row lock before
    its stylist's lock would break the lock order), then forgotten by the session, so the
    operation loads its rows afresh under its own locks."""
    if op.before is None:
        return None
    try:
        found = op.before(session, ctx)
    except DomainError:
        found = None
    session.expunge_all()
    return None if found is None else dict(jsonable(found))


def record_audit(
    session: Session,
    op: Operation,
    ctx: WriteContext,
    before: dict[str, Any] | None,
    outcome: WriteOutcome,
) -> None:
    """One `audit_events` row for a staff write that changed something (a refusal did not)."""
    if outcome.status >= 400:
        return
    after = dict(jsonable(outcome.body)) if outcome.body else None
    changed_before, changed_after = changed_fields(before, after)
    session.execute(
        insert(AuditEvent).values(
            id=new_id(),
            biz_entity_id=ctx.principal.biz,
            actor_sub=ctx.principal.sub,
            actor_role=ctx.principal.role,
            action=op.name,
            object_type=op.object_type or op.name.split(".", 1)[0],
            object_id=_object_id(ctx, after, before),
            request_id=ctx.request_id,
            write_id=ctx.write_id,
            before=changed_before,
            after=changed_after,
        )
    )


def changed_fields(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The fields that differ (all of them for a create or a delete), PII masked."""
    if before is not None and after is not None:
        keys = [k for k in after if before.get(k) != after.get(k)]
        keys += [k for k in before if k not in after]
        before = {k: before.get(k) for k in keys}
        after = {k: after.get(k) for k in keys}
    return (
        mask_paths(before) if before is not None else None,
        mask_paths(after) if after is not None else None,
    )


def _object_id(
    ctx: WriteContext, after: dict[str, Any] | None, before: dict[str, Any] | None
) -> uuid.UUID | None:
    for name, value in ctx.params.items():
        if name.endswith("_id"):
            return _uuid(value)
    for view in (after, before):
        if view and view.get("id"):
            return _uuid(view["id"])
    return None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def list_audit(
    session: Session,
    principal: Principal,
    *,
    object_type: str | None,
    object_id: uuid.UUID | None,
    actor: uuid.UUID | None,
    action: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    """The brand's audit rows, newest first (ties by id: a stable order across pages)."""
    query = select(AuditEvent).where(AuditEvent.biz_entity_id == principal.biz)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id:
        query = query.where(AuditEvent.object_id == object_id)
    if actor:
        query = query.where(AuditEvent.actor_sub == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return [audit_view(r) for r in rows], total


def audit_view(row: AuditEvent) -> dict[str, Any]:
    view: dict[str, Any] = jsonable(
        {
            "id": row.id,
            "at": row.at,
            "actor": {"sub": row.actor_sub, "role": row.actor_role},
            "action": row.action,
            "object_type": row.object_type,
            "object_id": row.object_id,
            "request_id": row.request_id,
            "write_id": row.write_id,
            "before": row.before,
            "after": row.after,
        }
    )
    return view
