"""The PII codec: sealed values open only with their key and in their place; key ids let
keys rotate; search hashes ignore spelling; no keys, no start (outside development)."""

from __future__ import annotations

import base64

import pytest

from salon.infra.pii import (
    PiiCodec,
    PiiConfigError,
    PiiKeyUnknown,
    mask_paths,
    parse_keys,
    pii_codec,
)
from salon.settings import Settings

K1, K2 = base64.b64encode(b"a" * 32).decode(), base64.b64encode(b"b" * 32).decode()
HASH = base64.b64encode(b"h" * 32).decode()


def codec(keys: str) -> PiiCodec:
    return PiiCodec(parse_keys(keys), base64.b64decode(HASH))


def test_a_sealed_value_names_its_key_and_opens_only_in_its_place():
    c = codec(f"k1:{K1}")
    sealed = c.seal("+1 (555) 123-4567", "bookings:1:customer_phone")
    assert sealed is not None and sealed.startswith("k1:") and "555" not in sealed
    assert c.open(sealed, "bookings:1:customer_phone") == "+1 (555) 123-4567"
    assert c.seal("x", "a") != c.seal("x", "a")  # a fresh nonce every time
    with pytest.raises(ValueError):
        c.open(sealed, "bookings:2:customer_phone")  # moved to another row
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(ValueError):
        c.open(tampered, "bookings:1:customer_phone")


def test_old_keys_open_and_only_the_first_seals():
    old = codec(f"k1:{K1}")
    sealed = old.seal("ana@example.com", "x")
    new = codec(f"k2:{K2},k1:{K1}")
    assert new.open(sealed, "x") == "ana@example.com"
    assert new.kid_of(new.seal("ana@example.com", "x")) == "k2"
    with pytest.raises(PiiKeyUnknown):
        codec(f"k2:{K2}").open(sealed, "x")


def test_search_hashes_ignore_the_spelling_of_a_phone_and_the_case_of_an_email():
    c = codec(f"k1:{K1}")
    spellings = ["+1 (555) 123-4567", "+1/555/123/4567", "+1.555.123.4567", "+15551234567"]
    assert len({c.phone_hash(p) for p in spellings}) == 1
    assert c.phone_hash("15551234567") != c.phone_hash("+15551234567")
    assert c.email_hash(" Ana@Example.COM") == c.email_hash("ana@example.com")
    other = PiiCodec(parse_keys(f"k1:{K1}"), b"o" * 32)
    assert other.phone_hash(spellings[0]) != c.phone_hash(spellings[0])  # keyed


def test_bodies_are_sealed_opened_and_masked_at_their_pii_paths_only():
    c = codec(f"k1:{K1}")
    body = {
        "slot_id": "s",
        "customer": {"name": "Ana", "phone": "+33 6 12 34 56 78", "email": "ana@example.com"},
        "notes": "allergic to latex",
    }
    sealed = c.seal_paths(body, "write:1:body")
    assert sealed["slot_id"] == "s" and sealed["customer"]["name"] == "Ana"
    assert "+33" not in str(sealed) and "ana@" not in str(sealed) and "latex" not in str(sealed)
    assert body["customer"]["phone"] == "+33 6 12 34 56 78"  # the original is left alone
    assert c.open_paths(sealed, "write:1:body") == body
    assert c.open_paths(body, "write:1:body") == body  # clear (older) values pass as they are
    assert not c.stale_paths(sealed) and c.stale_paths(body)
    assert mask_paths(body)["customer"] == {
        "name": "Ana",
        "phone": "***78",
        "email": "a***@example.com",
    }
    assert mask_paths(body)["notes"] == "***"
    assert mask_paths(mask_paths(body)) == mask_paths(body)


def test_no_keys_no_start_unless_developing():
    with pytest.raises(PiiConfigError):
        pii_codec(Settings())
    assert pii_codec(Settings(dev=True)).kid == "dev"
    with pytest.raises(PiiConfigError):  # a placeholder is not a key
        pii_codec(Settings(pii_keys="k1:CHANGE-ME", pii_hash_key=HASH))
    with pytest.raises(PiiConfigError):
        pii_codec(Settings(pii_keys=f"k1:{base64.b64encode(b'short').decode()}", pii_hash_key=HASH))
    configured = pii_codec(Settings(pii_keys=f"k2:{K2},k1:{K1}", pii_hash_key=HASH, dev=True))
    assert configured.kid == "k2" and configured.kids == ("k2", "k1")  # set keys win, even in dev
    assert "k1:" not in repr(Settings(pii_keys=f"k1:{K1}"))
