"""The parsing of `api.slots_entrance` in front of Falcon agrees with Falcon's, or declines."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest
from falcon import testing

from api.slots_entrance import cookie_session, plain_query
from salon.public_times.exposures import ExposureService

# Fixed, not random: test ids must be the same in every pytest-xdist worker's collection.
LOC = "8f99f178-9d1d-4cef-b9ef-8f7c43f40961"
SVC = "3eb238e0-bb37-4e26-bea8-033f8aaa2faa"


def test_a_plain_query_is_read_and_its_ids_lowercased():
    fields = plain_query(f"date=2026-12-01&location_id={LOC.upper()}&service_id={SVC}")
    assert fields == {"date": "2026-12-01", "location_id": LOC, "service_id": SVC}
    with_stylist = plain_query(
        f"service_id={SVC}&stylist_id={LOC}&date=2026-12-01&location_id={LOC}"
    )
    assert with_stylist is not None and with_stylist["stylist_id"] == LOC


@pytest.mark.parametrize(
    "query",
    [
        "",
        f"date=2026-12-01&location_id={LOC}",  # service missing
        f"date=2026-02-30&location_id={LOC}&service_id={SVC}",  # no such day
        f"date=20261201&location_id={LOC}&service_id={SVC}",  # another spelling
        f"date=2026-12-01&location_id={LOC.replace('-', '')}&service_id={SVC}",
        f"date=2026-12-01&location_id=%7B{LOC}%7D&service_id={SVC}",
        f"date=2026-12-01&location_id={LOC}&service_id={SVC}&timezone=UTC",
        f"date=2026-12-01&location_id={LOC}&service_id={SVC}&stylist_id=",
        f"date=2026-12-01&date=2026-12-02&location_id={LOC}&service_id={SVC}",
        f"date=2026-12-01&location_id={LOC}&service_id={SVC}&",
    ],
)
def test_anything_else_is_left_to_falcon(query):
    assert plain_query(query) is None


@pytest.mark.parametrize(
    "header",
    [
        "salon_sid=" + "a" * 32,
        "theme=dark; salon_sid=" + "b" * 32,
        "salon_sid=" + "c" * 32 + "; salon_sid=" + "d" * 32,
        "xsalon_sid=" + "e" * 32 + "; salon_sid=" + "f" * 32,
        "theme=dark",
    ],
)
def test_the_session_cookie_is_the_one_falcon_reads(header):
    req = testing.create_req(headers={"Cookie": header})
    assert cookie_session(header) == req.cookies.get("salon_sid")


@pytest.mark.parametrize("stylist", [None, "28242aae-1e5e-4829-8296-10f6f31632f6"])
def test_the_key_of_a_plain_querys_text_is_the_key_of_its_values(stylist):
    """The layer keys a repeat from the query's text; the resource from parsed values."""
    query = f"date=2026-12-01&location_id={LOC.upper()}&service_id={SVC}"
    fields = plain_query(query + (f"&stylist_id={stylist.upper()}" if stylist else ""))
    assert fields is not None
    container = SimpleNamespace(settings=SimpleNamespace(redis_namespace="ns"))
    service = ExposureService(container, reads=object())  # type: ignore[arg-type]
    from_text = service.key_of(
        "session:s",
        fields["location_id"],
        fields["service_id"],
        fields.get("stylist_id"),
        fields["date"],
        "balanced",
    )
    from_values = service.key(
        "session:s",
        uuid.UUID(LOC),
        uuid.UUID(SVC),
        uuid.UUID(stylist) if stylist else None,
        dt.date(2026, 12, 1),
        "balanced",
    )
    assert from_text == from_values
    assert from_text.endswith(f":{stylist or 'any'}:2026-12-01:balanced")
