"""A booking's customer at rest: the one place booking rows get their PII columns.

Every writer of a booking (a customer's hold, staff booking on a customer's behalf) builds
the customer's columns with `customer_columns`, so phone, email and notes are never stored in
clear and the search hashes are always there (salon.infra.pii, docs/security.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from models.tables import Booking
from salon.infra.pii import PiiCodec

# The sealed columns, each bound to its row and its name (a ciphertext moved elsewhere fails).
SEALED_COLUMNS = ("customer_phone", "customer_email", "notes")


def aad(booking_id: uuid.UUID, column: str) -> str:
    return f"bookings:{booking_id}:{column}"


def customer_columns(
    pii: PiiCodec,
    booking_id: uuid.UUID,
    *,
    name: str,
    phone: str,
    email: str | None,
    notes: str | None,
) -> dict[str, Any]:
    """The booking's customer columns, sealed under the current key, with the search hashes."""
    clear = {"customer_phone": phone, "customer_email": email, "notes": notes}
    return {
        "customer_name": name,
        **{c: pii.seal(clear[c], aad(booking_id, c)) for c in SEALED_COLUMNS},
        "pii_kid": pii.kid,
        "customer_phone_hash": pii.phone_hash(phone),
        "customer_email_hash": pii.email_hash(email),
    }


def opened(pii: PiiCodec, b: Booking) -> dict[str, str | None]:
    """The row's phone, email and notes in clear (a row still clear before encryption as is)."""
    values = {c: getattr(b, c) for c in SEALED_COLUMNS}
    if b.pii_kid is None:
        return values
    return {c: pii.open(v, aad(b.id, c)) for c, v in values.items()}


def resealed(pii: PiiCodec, b: Booking, *, force: bool = False) -> dict[str, Any] | None:
    """The columns that put the row under the current key (clear ones sealed, the hashes
    recomputed under the current hash key); None when it is there already (unless `force`:
    after a change of the hash key alone)."""
    if (
        not force
        and b.pii_kid == pii.kid
        and all(
            pii.kid_of(getattr(b, c)) == pii.kid
            for c in SEALED_COLUMNS
            if getattr(b, c) is not None
        )
    ):
        return None
    clear = opened(pii, b)
    phone = clear["customer_phone"] or ""
    return customer_columns(
        pii,
        b.id,
        name=b.customer_name,
        phone=phone,
        email=clear["customer_email"],
        notes=clear["notes"],
    )
