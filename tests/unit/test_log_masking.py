"""Log lines never carry a customer's phone or email, in any spelling the API accepts, in the
message, in extra fields or in a traceback."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from salon.infra.logs import JsonFormatter, MaskingFormatter, mask_pii

PHONES = [
    "+1 (555) 123-4567",
    "+1/555/123/4567",
    "+1.555.123.4567",
    "+15551234567",
    "(555) 123-4567",
    "555 123 4567",
    "+33 6 12 34 56 78",
    "+44 20 7946 0958",
    "+351 912 345 678",
    "+49 (0) 30 1234 5678",
]
EMAILS = ["ana@example.com", "o'brien+tag@mail.example.org", "ANA.LOPEZ@Example.COM"]


@pytest.mark.parametrize("phone", PHONES)
def test_every_accepted_phone_spelling_is_masked_to_its_last_two_digits(phone):
    masked = mask_pii(f"customer phone={phone} called")
    digits = "".join(c for c in phone if c.isdigit())
    assert masked == f"customer phone=***{digits[-2:]} called"
    assert mask_pii(json.dumps({"phone": phone})) == json.dumps({"phone": f"***{digits[-2:]}"})


@pytest.mark.parametrize("email", EMAILS)
def test_emails_keep_only_their_first_letter_and_domain(email):
    local, domain = email.split("@")
    assert mask_pii(f"to {email}, now") == f"to {local[0]}***@{domain}, now"
    quoted = mask_pii(json.dumps({"email": email}))
    assert quoted == json.dumps({"email": f"{local[0]}***@{domain}"})
    assert local[1:] not in mask_pii(repr({"email": email}))


def test_ids_times_dates_addresses_and_decimals_stay_readable():
    text = (
        "booking 0192a3b4-0000-7000-8000-000000000001 at 2026-03-29T10:00:00Z on 2026-03-29"
        " from 192.168.100.200:8000 took 1234.5678 ms"
    )
    assert mask_pii(text) == text


def _record_with_traceback() -> logging.LogRecord:
    try:
        raise ValueError("no booking for +1 (555) 123-4567 / ana@example.com")
    except ValueError:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed for %s", ("+1/555/123/4567",), exc_info
    )


def test_a_traceback_is_masked_in_json_lines():
    line = JsonFormatter().format(_record_with_traceback())
    doc = json.loads(line)
    assert "ValueError: no booking for ***67 / a***@example.com" in doc["exc"]
    assert doc["msg"] == "failed for ***67"
    for clear in ("555", "4567", "ana@"):
        assert clear not in line


def test_a_traceback_is_masked_in_plain_lines():
    line = MaskingFormatter("%(levelname)s %(message)s").format(_record_with_traceback())
    assert line.startswith("ERROR failed for ***67\nTraceback")
    assert "ValueError: no booking for ***67 / a***@example.com" in line
    for clear in ("555", "4567", "ana@"):
        assert clear not in line
