"""Principals and JWTs (design.md "Auth"): HS256 with the configured secret, RS256 optional."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from salon.settings import DEV_JWT_SECRET, Settings

ROLES = ("user", "stylist", "frontdesk", "manager", "admin", "operator")
STAFF_ROLES = ("stylist", "frontdesk", "manager", "admin")
ADMIN_ROLES = ("frontdesk", "manager", "admin")


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    sub: uuid.UUID
    role: str
    biz: uuid.UUID | None

    @property
    def key(self) -> str:
        """Idempotency keys and ownership are scoped by this string."""
        return f"{self.role}:{self.sub}"

    def as_dict(self) -> dict[str, Any]:
        return {"sub": str(self.sub), "role": self.role, "biz": str(self.biz) if self.biz else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Principal:
        biz = data.get("biz")
        return cls(uuid.UUID(data["sub"]), data["role"], uuid.UUID(biz) if biz else None)


def issue_token(
    settings: Settings, *, role: str, biz: uuid.UUID | None, sub: uuid.UUID, ttl_seconds: int = 3600
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(sub), "role": role, "iat": now, "exp": now + ttl_seconds}
    if biz is not None:
        claims["biz"] = str(biz)
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


MIN_SECRET_BYTES = 32
# Secrets that are documented, shipped or guessed first; compared lower-case.
PLACEHOLDERS = frozenset({"changeme", "change-me", "change_me", "secret", "password", "jwt-secret"})
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "dev-only",
    "dev-secret",
    "not-for-production",
)


def weak_secret(secret: str) -> str | None:
    """Why `secret` must not sign production tokens, or None: anyone who knows the development
    secret or guesses a placeholder could mint an admin token."""
    text = secret.strip().lower()
    if secret == DEV_JWT_SECRET:
        return "it is the published development secret"
    if not text:
        return "it is empty"
    if text in PLACEHOLDERS or any(word in text for word in _PLACEHOLDER_WORDS):
        return "it is a placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"it is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(text)) <= 2:
        return "it repeats one or two characters"
    return None


def startup_refusal(settings: Settings) -> str | None:
    """Why a production process (api, worker, scheduler) must not start, or None. The
    development flag (`SALON_DEV=true`, set by `salon dev`) allows the development secret."""
    if settings.dev:
        return None
    reason = weak_secret(settings.jwt_secret)
    if reason is None:
        return None
    return (
        f"JWT_SECRET is not fit for production: {reason}. Set JWT_SECRET to at least"
        f" {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`), or SALON_DEV=true"
        " for development"
    )


# Tokens this process has verified: a customer's app sends the same token on every request,
# and checking its signature again was ~10 % of a booking's API CPU. Keyed by the token and
# everything it was checked against; only the clock can make a verified token invalid, so its
# expiry is checked at every use. Failures are not kept.
MAX_VERIFIED = 20_000
LEEWAY_SECONDS = 5
_verified: dict[tuple[str, str, str, str, str, int], tuple[Principal, float]] = {}


def decode_token(settings: Settings, token: str) -> Principal:
    """The token's principal, if its signature, issuer, audience, claims, lifetime and expiry
    hold."""
    cache_key = (
        token,
        settings.jwt_secret,
        settings.jwt_public_key,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.jwt_max_lifetime_seconds,
    )
    kept = _verified.get(cache_key)
    if kept is not None:
        principal, expires = kept
        if time.time() <= expires + LEEWAY_SECONDS:
            return principal
        _verified.pop(cache_key, None)
    principal, expires = _verify(settings, token)
    if len(_verified) >= MAX_VERIFIED:
        _verified.clear()  # bounded; the next uses verify again
    _verified[cache_key] = (principal, expires)
    return principal


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    # A fixed algorithm list per key: never let the token choose (no "none", no HS/RS mix-up).
    key: str = settings.jwt_secret
    algorithms = ["HS256"]
    if settings.jwt_public_key:
        header_alg = _header_alg(token)
        if header_alg == "RS256":
            key, algorithms = settings.jwt_public_key, ["RS256"]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=settings.jwt_issuer or None,
            audience=settings.jwt_audience or None,
            options={"require": ["exp", "sub", "role"]},
            leeway=LEEWAY_SECONDS,
        )
        _check_lifetime(settings, claims)
        role = claims["role"]
        if role not in ROLES:
            raise InvalidToken(f"unknown role {role!r}")
        biz = claims.get("biz")
        principal = Principal(
            uuid.UUID(str(claims["sub"])), role, uuid.UUID(str(biz)) if biz else None
        )
        return principal, float(claims["exp"])
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken(str(exc)) from exc


def _check_lifetime(settings: Settings, claims: dict[str, Any]) -> None:
    """A token living longer than JWT_MAX_LIFETIME_SECONDS is refused: a stolen one (or one in
    year 9999) would otherwise work for as long as it says."""
    cap = settings.jwt_max_lifetime_seconds
    if cap <= 0:
        return
    exp = float(claims["exp"])
    iat = claims.get("iat")
    start = float(iat) if isinstance(iat, int | float) else time.time()
    if exp - start > cap + LEEWAY_SECONDS:
        raise InvalidToken(f"lives longer than {cap} seconds")


def _header_alg(token: str) -> str | None:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.PyJWTError:
        return None
