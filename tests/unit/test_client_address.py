"""The caller's address: the socket's peer, unless that peer is a trusted proxy."""

from __future__ import annotations

import pytest
from falcon import testing

from api.client_address import ClientAddress

SPOOFS = [
    {},
    {"X-Forwarded-For": "203.0.113.9, 10.0.0.1"},
    {"X-Forwarded-For": " 198.51.100.3 "},
    {"X-Real-IP": "192.0.2.44"},
    {"X-Real-IP": "192.0.2.44", "X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=192.0.2.60;proto=http"},
]


@pytest.mark.parametrize("headers", SPOOFS)
def test_without_trusted_proxies_the_socket_decides(headers):
    req = testing.create_req(headers=headers, remote_addr="10.9.8.7")
    assert ClientAddress("").address(req.env) == "10.9.8.7"


@pytest.mark.parametrize("headers", SPOOFS)
def test_a_peer_that_is_not_a_trusted_proxy_is_the_caller(headers):
    req = testing.create_req(headers=headers, remote_addr="198.51.100.77")
    assert ClientAddress("10.0.0.0/8").address(req.env) == "198.51.100.77"


@pytest.mark.parametrize(
    ("forwarded", "caller"),
    [
        ("203.0.113.9", "203.0.113.9"),
        # The client wrote the left part; the proxies appended the right-most hops.
        ("1.2.3.4, 203.0.113.9", "203.0.113.9"),
        ("1.2.3.4, 203.0.113.9, 10.1.1.1", "203.0.113.9"),
        ("not-an-address, 10.1.1.1", "not-an-address"),
        ("10.2.2.2, 10.1.1.1", "10.2.2.2"),  # only proxies: the left-most one
    ],
)
def test_behind_trusted_proxies_the_right_most_untrusted_hop_is_the_caller(forwarded, caller):
    req = testing.create_req(
        headers={"X-Forwarded-For": forwarded, "X-Real-IP": "9.9.9.9"}, remote_addr="10.0.0.5"
    )
    assert ClientAddress("10.0.0.0/8, 192.168.0.1").address(req.env) == caller


def test_a_trusted_proxy_without_a_forwarded_header_is_the_caller():
    req = testing.create_req(remote_addr="192.168.0.1")
    assert ClientAddress("10.0.0.0/8, 192.168.0.1").address(req.env) == "192.168.0.1"


def test_a_bad_cidr_is_an_error_at_start():
    with pytest.raises(ValueError):
        ClientAddress("10.0.0.0/33")
