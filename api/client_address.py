"""Who is calling, as far as the network can tell: the one place that decides it.

The socket's peer (`REMOTE_ADDR`) is the caller unless that peer is a trusted reverse proxy
(`TRUSTED_PROXIES`, CIDRs; none by default). Behind trusted proxies the caller is the
right-most `X-Forwarded-For` hop that is not itself a trusted proxy: every hop left of it was
written by someone we cannot vouch for. `X-Real-IP` and `Forwarded` are never read, so a
client cannot choose the address its requests are counted against. Used by the rate limiter
(`api.middleware.rate_limit`) and the /v1/slots fast path (`api.slots_entrance`), which must
count a caller the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES` ("10.0.0.0/8, 192.168.1.7") as networks; a bad entry is an error at
    start, not a proxy silently distrusted."""
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


@lru_cache(maxsize=8192)
def _within(networks: tuple[Network, ...], address: str) -> bool:
    # Cached: the same proxies and callers come back on every request, and parsing an
    # address costs more than the fast path's answer itself.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class ClientAddress:
    """`address(environ)`: the caller's address under the configured trusted proxies."""

    def __init__(self, trusted_proxies: str) -> None:
        self.networks = parse_networks(trusted_proxies)

    def trusted(self, address: str) -> bool:
        return _within(self.networks, address)

    def address(self, environ: Mapping[str, Any]) -> str:
        # No REMOTE_ADDR: an in-process caller (Falcon's `remote_addr` says the same).
        peer = str(environ.get("REMOTE_ADDR") or "127.0.0.1")
        if not self.networks or not self.trusted(peer):
            return peer
        forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusted(hop):
                return hop
        # Only proxies on the way: the left-most one is as close to the caller as we know.
        return hops[0] if hops else peer
