"""Who may call what: the one authorization table (route template and method → roles, scope).

`api.middleware.access` refuses a request by this table before any responder runs: 401 for an
anonymous caller where a token is needed, 403 for a role the route does not grant. A route
the table lacks is refused too (and `tests/unit/test_access.py` fails when the router has
one), so a new route cannot be forgotten. The OpenAPI document's per-operation security and
`docs/security.md`'s table are both made from it (`python -m api.access` prints the latter).

The role decides whether a route may be called; the scope says whose objects the call then
reaches, and the services enforce it by the token's claims: another principal's or brand's
object is "not found" (404), never 403, so ids cannot be probed (design.md "Auth").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import falcon

from api.errors import ProblemError
from salon.auth import ROLES, Principal


class Scope(StrEnum):
    # The object is the caller's own: a customer's bookings, anyone's own write requests.
    OWN = "own"
    # The caller's brand (the token's `biz` claim), every object of it.
    BRAND = "brand"
    # The caller's brand, and only what is the stylist's own (their token's `sub` is their
    # stylist id): their bookings, their column of the day view.
    OWN_STYLIST = "own stylist"


@dataclass(frozen=True)
class Grant:
    scope: Scope
    # For a route that takes an `action` (PATCH of a booking): the ones this role may ask
    # for; None: every one.
    actions: frozenset[str] | None = None


@dataclass(frozen=True)
class Access:
    """One route and method: anyone (`public`), or the roles it grants and how far."""

    grants: Mapping[str, Grant]
    public: bool = False

    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if r in self.grants)


PUBLIC = Access({}, public=True)


def _grant(scope: Scope, *roles: str, actions: frozenset[str] | None = None) -> dict[str, Grant]:
    return {role: Grant(scope, actions) for role in roles}


CUSTOMER = Access(_grant(Scope.OWN, "user"))
# Any principal that writes, reading its own write requests back (operators write nothing).
WRITERS = Access(_grant(Scope.OWN, "user", "stylist", "frontdesk", "manager", "admin"))
# Reads of the brand's catalogue, rules and slots: the front desk books from them.
BRAND_READERS = Access(_grant(Scope.BRAND, "admin", "manager", "frontdesk"))
# Changes to the catalogue, the rules and slot generation.
BRAND_EDITORS = Access(_grant(Scope.BRAND, "admin", "manager"))
# Bookings: the front desk and up over the brand's; a stylist over their own.
STYLIST_ACTIONS = frozenset({"complete", "no_show"})
BOOKING_READERS = Access(
    {**_grant(Scope.BRAND, "admin", "manager", "frontdesk"), **_grant(Scope.OWN_STYLIST, "stylist")}
)
# The audit trail of staff writes: those who answer for the catalogue, rules and staff.
AUDITORS = Access(_grant(Scope.BRAND, "admin", "manager"))
BOOKING_CHANGERS = Access(
    {
        **_grant(Scope.BRAND, "admin", "manager", "frontdesk"),
        **_grant(Scope.OWN_STYLIST, "stylist", actions=STYLIST_ACTIONS),
    }
)

Key = tuple[str, str]  # (route template, HTTP method)

ACCESS: Mapping[Key, Access] = {
    # Probes, metrics and the API's own documents. (Operators' endpoints join here when they
    # come, granted to `operator` alone: today no route reaches customers' data for them.)
    ("/healthz", "GET"): PUBLIC,
    ("/readyz", "GET"): PUBLIC,
    ("/metrics", "GET"): PUBLIC,
    ("/openapi.yaml", "GET"): PUBLIC,
    ("/openapi.json", "GET"): PUBLIC,
    ("/docs", "GET"): PUBLIC,
    ("/redoc", "GET"): PUBLIC,
    # The public catalogue and times: anonymous callers too.
    ("/v1/locations", "GET"): PUBLIC,
    ("/v1/locations/{location_id}/services", "GET"): PUBLIC,
    ("/v1/locations/{location_id}/stylists", "GET"): PUBLIC,
    ("/v1/dates", "GET"): PUBLIC,
    ("/v1/slots", "GET"): PUBLIC,
    # A customer's own bookings.
    ("/v1/bookings", "GET"): CUSTOMER,
    ("/v1/bookings", "POST"): CUSTOMER,
    ("/v1/bookings/{booking_id}", "GET"): CUSTOMER,
    ("/v1/bookings/{booking_id}/confirm", "POST"): CUSTOMER,
    ("/v1/bookings/{booking_id}/cancel", "POST"): CUSTOMER,
    ("/v1/bookings/{booking_id}/reschedule", "POST"): CUSTOMER,
    ("/v1/requests/{request_id}", "GET"): WRITERS,
    # The brand's catalogue.
    ("/admin/v1/locations", "GET"): BRAND_READERS,
    ("/admin/v1/locations", "POST"): BRAND_EDITORS,
    ("/admin/v1/locations/{location_id}", "GET"): BRAND_READERS,
    ("/admin/v1/locations/{location_id}", "PATCH"): BRAND_EDITORS,
    ("/admin/v1/stylists", "GET"): BRAND_READERS,
    ("/admin/v1/stylists", "POST"): BRAND_EDITORS,
    ("/admin/v1/stylists/{stylist_id}", "GET"): BRAND_READERS,
    ("/admin/v1/stylists/{stylist_id}", "PATCH"): BRAND_EDITORS,
    ("/admin/v1/services", "GET"): BRAND_READERS,
    ("/admin/v1/services", "POST"): BRAND_EDITORS,
    ("/admin/v1/services/{service_id}", "GET"): BRAND_READERS,
    ("/admin/v1/services/{service_id}", "PATCH"): BRAND_EDITORS,
    # Rules, generation, slots.
    ("/admin/v1/availabilities", "GET"): BRAND_READERS,
    ("/admin/v1/availabilities", "POST"): BRAND_EDITORS,
    ("/admin/v1/availabilities/{rule_id}", "GET"): BRAND_READERS,
    ("/admin/v1/availabilities/{rule_id}", "PATCH"): BRAND_EDITORS,
    ("/admin/v1/availabilities/{rule_id}", "DELETE"): BRAND_EDITORS,
    ("/admin/v1/slots/generate", "POST"): BRAND_EDITORS,
    ("/admin/v1/jobs/{job_id}", "GET"): BRAND_EDITORS,
    ("/admin/v1/slots", "GET"): BRAND_READERS,
    # Who was shown which times (support of the public flow; customers' ids, no PII).
    ("/admin/v1/exposures", "GET"): BRAND_EDITORS,
    # Bookings and the day view.
    ("/admin/v1/bookings", "GET"): BOOKING_READERS,
    ("/admin/v1/bookings", "POST"): BRAND_READERS,
    ("/admin/v1/bookings/{booking_id}", "GET"): BOOKING_READERS,
    ("/admin/v1/bookings/{booking_id}", "PATCH"): BOOKING_CHANGERS,
    ("/admin/v1/schedule", "GET"): BOOKING_READERS,
    # Who changed what (PII masked).
    ("/admin/v1/audit", "GET"): AUDITORS,
}


def decide(access: Access, principal: Principal | None) -> Grant | None:
    """The caller's grant (None on a public route), or the refusal raised."""
    if access.public:
        return None
    if principal is None:
        raise ProblemError(401, "Unauthorized", "this endpoint needs a bearer token")
    grant = access.grants.get(principal.role)
    if grant is None:
        raise ProblemError(403, "Forbidden", f"role {principal.role!r} may not do this")
    if grant.scope is not Scope.OWN and principal.biz is None:
        raise ProblemError(403, "Forbidden", "staff tokens must carry a 'biz' claim")
    return grant


def require_action(req: falcon.Request, action: str) -> None:
    """Refuse an action the caller's grant does not include (a stylist cancelling)."""
    grant: Grant | None = getattr(req.context, "grant", None)
    if grant is not None and grant.actions is not None and action not in grant.actions:
        raise ProblemError(
            403, "Forbidden", f"role {req.context.principal.role!r} may not {action} a booking"
        )


# --- docs/security.md ---------------------------------------------------------------------

TABLE_START = "<!-- access table: generated by `python -m api.access`; do not edit -->"
TABLE_END = "<!-- end of access table -->"


def _cell(access: Access, role: str) -> str:
    grant = access.grants.get(role)
    if access.public:
        return "yes"
    if grant is None:
        return "—"
    text = str(grant.scope)
    if grant.actions is not None:
        text += f" ({', '.join(sorted(grant.actions))})"
    return text


def markdown_table() -> str:
    """The table as docs/security.md shows it, between its markers."""
    roles = ("anonymous", *ROLES)
    lines = [
        TABLE_START,
        "| Route | " + " | ".join(roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for (template, method), access in ACCESS.items():
        cells = ["yes" if access.public else "—"] + [_cell(access, r) for r in ROLES]
        lines.append(f"| `{method} {template}` | " + " | ".join(cells) + " |")
    lines.append(TABLE_END)
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
