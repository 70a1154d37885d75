"""UUIDv7 ids: time-ordered, so new rows land at the right edge of every btree index."""

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def _uuid7_int(ms: int, rand: int) -> int:
    """48-bit Unix ms | version 7 | 12 random bits | variant 10 | 62 random bits (RFC 9562)."""
    return (ms << 80) | _VERSION_7 | ((rand >> 62) << 64) | _VARIANT | (rand & _RAND_B)


def new_id() -> uuid.UUID:
    rand = int.from_bytes(os.urandom(10), "big") >> 6  # 74 random bits
    return uuid.UUID(int=_uuid7_int(time.time_ns() // 1_000_000, rand))


def new_id_hexes(count: int) -> list[str]:
    """`count` UUIDv7 as 32 hex digits (PostgreSQL's uuid input accepts them): for bulk COPY,
    where building UUID objects would cost more than writing the rows."""
    ms = time.time_ns() // 1_000_000
    noise = os.urandom(10 * count)
    return [
        f"{_uuid7_int(ms, int.from_bytes(noise[i : i + 10], 'big') >> 6):032x}"
        for i in range(0, 10 * count, 10)
    ]
