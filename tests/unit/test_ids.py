import time
import uuid

from models.ids import new_id, new_id_hexes


def test_ids_are_version_7_time_ordered_and_unique():
    ids = [new_id() for _ in range(2000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    ms = int(time.time() * 1000)
    assert abs((ids[0].int >> 80) - ms) < 5000
    later = new_id()
    time.sleep(0.002)
    assert new_id() > later


def test_bulk_hex_ids_parse_as_version_7_uuids():
    hexes = new_id_hexes(1000)
    parsed = [uuid.UUID(h) for h in hexes]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 for p in parsed)
    assert len(set(parsed)) == 1000
