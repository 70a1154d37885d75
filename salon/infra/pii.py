"""Customers' phone, email and notes at rest: AES-GCM under rotating keys, keyed hashes for
search, and masks for whatever must show them without revealing them (docs/security.md).

A sealed value is text, `kid:nonce:ciphertext` (URL-safe base64, no padding): the key id says
which key opens it, so keys can rotate while old rows are still readable. Each value is bound
to its place (`aad`: the row and the field), so a ciphertext copied into another row or field
does not open. Search uses HMAC-SHA256 of the normalised value under a key of its own.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from salon.settings import Settings

# `salon dev` only (SALON_DEV=true): published, like the development JWT secret, so they protect
# nothing; every other process refuses to start without keys of its own.
DEV_PII_KEYS = "dev:" + base64.b64encode(hashlib.sha256(b"salon dev pii key").digest()).decode()
DEV_PII_HASH_KEY = base64.b64encode(hashlib.sha256(b"salon dev pii hash key").digest()).decode()

# The places a write's body or a booking's view carries PII, as paths of keys.
PII_PATHS: tuple[tuple[str, ...], ...] = (("customer", "phone"), ("customer", "email"), ("notes",))

_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SEALED = re.compile(r"^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_-]{16}):([A-Za-z0-9_-]{22,})$")
_NONCE_BYTES = 12


class PiiConfigError(RuntimeError):
    """PII keys missing or malformed: the process must not start."""


class PiiKeyUnknown(RuntimeError):
    """A value sealed under a key id that is not configured (removed too early?)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_bytes(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PiiConfigError(f"{what} is not base64") from exc
    return raw


def normalise_phone(phone: str) -> str:
    """Digits only, keeping a leading `+`: every spelling the API accepts of one number
    (`+1 (555) 123-4567`, `+1/555/123/4567`, `+1.555.123.4567`) is the same number."""
    digits = re.sub(r"\D", "", phone)
    return ("+" if phone.strip().startswith("+") else "") + digits


def normalise_email(email: str) -> str:
    return email.strip().lower()


def mask_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return "***" + digits[-2:]


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class PiiCodec:
    """Seals and opens PII values, and hashes them for search. `keys`: (kid, 32-byte key),
    the first encrypts, all decrypt."""

    def __init__(self, keys: list[tuple[str, bytes]], hash_key: bytes) -> None:
        if not keys:
            raise PiiConfigError("no PII key")
        for kid, key in keys:
            if not _KID.match(kid):
                raise PiiConfigError(f"PII key id {kid!r}: 1-32 of A-Z a-z 0-9 _ -")
            if len(key) != 32:
                raise PiiConfigError(f"PII key {kid!r} must be 32 bytes (base64 of them)")
        if len({kid for kid, _ in keys}) != len(keys):
            raise PiiConfigError("PII key ids must differ")
        if len(hash_key) < 32:
            raise PiiConfigError("PII_HASH_KEY must be at least 32 bytes (base64 of them)")
        self.kid = keys[0][0]
        self.kids = tuple(kid for kid, _ in keys)
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}
        self._hash_key = hash_key

    # --- values ---------------------------------------------------------------------------

    def seal(self, value: str | None, aad: str) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.kid].encrypt(nonce, value.encode(), aad.encode())
        return f"{self.kid}:{_b64(nonce)}:{_b64(sealed)}"

    def open(self, sealed: str | None, aad: str) -> str | None:
        if sealed is None:
            return None
        match = _SEALED.match(sealed)
        if match is None:
            raise ValueError("not a sealed value")
        kid, nonce, body = match.groups()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PiiKeyUnknown(f"PII key {kid!r} is not configured (PII_KEYS)")
        try:
            return cipher.decrypt(_unb64(nonce), _unb64(body), aad.encode()).decode()
        except InvalidTag as exc:
            raise ValueError(f"sealed value does not open for {aad}") from exc

    def open_lenient(self, value: str | None, aad: str) -> str | None:
        """A value that may predate encryption: sealed ones open, anything else is clear text
        written before (a write recorded by an older release). A phone or an email can never
        look sealed (the API refuses `:` in phones, a sealed value has no `@`)."""
        if value is None or not is_sealed(value):
            return value
        return self.open(value, aad)

    @staticmethod
    def kid_of(value: str | None) -> str | None:
        match = _SEALED.match(value or "")
        return match.group(1) if match else None

    # --- search ---------------------------------------------------------------------------

    def _hash(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self._hash_key, kind + b"\0" + value.encode(), hashlib.sha256).digest()

    def phone_hash(self, phone: str | None) -> bytes | None:
        return None if phone is None else self._hash(b"phone", normalise_phone(phone))

    def email_hash(self, email: str | None) -> bytes | None:
        return None if email is None else self._hash(b"email", normalise_email(email))

    def blind(self, data: bytes) -> str:
        """A keyed digest of anything that may carry PII (a request's fingerprint): unlike a
        plain SHA-256 it cannot be brute-forced over the few billion phone numbers."""
        return hmac.new(self._hash_key, data, hashlib.sha256).hexdigest()

    # --- write bodies and views -------------------------------------------------------------

    def seal_paths(self, body: Any, aad: str) -> Any:
        """`body` with the values at `PII_PATHS` sealed (a copy; other values shared)."""
        return _map_paths(body, lambda v, path: self.seal(v, f"{aad}:{path}"))

    def open_paths(self, body: Any, aad: str) -> Any:
        return _map_paths(body, lambda v, path: self.open_lenient(v, f"{aad}:{path}"))

    def reseal_paths(self, body: Any, aad: str) -> Any:
        """Opened with any key, sealed with the current one (rotation); clear ones sealed."""

        def reseal(value: str, path: str) -> str | None:
            return self.seal(self.open_lenient(value, f"{aad}:{path}"), f"{aad}:{path}")

        return _map_paths(body, reseal)

    def stale_paths(self, body: Any) -> bool:
        """Whether any PII value of `body` is clear or sealed under another key."""
        stale = False

        def check(v: str, path: str) -> str:
            nonlocal stale
            stale = stale or self.kid_of(v) != self.kid
            return v

        _map_paths(body, check)
        return stale


def is_sealed(value: str) -> bool:
    return _SEALED.match(value) is not None


def mask_paths(body: Any) -> Any:
    """`body` with its PII shown as masks (outbox events, audit rows)."""

    def mask(value: str, path: str) -> str:
        if path.endswith("phone"):
            return mask_phone(value)
        if path.endswith("email"):
            return mask_email(value)
        return "***"

    return _map_paths(body, mask)


def _map_paths(body: Any, fn: Any) -> Any:
    if not isinstance(body, dict):
        return body
    out = dict(body)
    for path in PII_PATHS:
        _map_one(out, path, fn, ".".join(path))
    return out


def _map_one(node: dict[str, Any], path: tuple[str, ...], fn: Any, name: str) -> None:
    head, rest = path[0], path[1:]
    value = node.get(head)
    if not rest:
        if isinstance(value, str):
            node[head] = fn(value, name)
        return
    if isinstance(value, dict):
        node[head] = child = dict(value)
        _map_one(child, rest, fn, name)


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """`kid1:base64key,kid2:base64key` → [(kid, key)], in order."""
    keys = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kid, sep, key = item.partition(":")
        if not sep:
            raise PiiConfigError("PII_KEYS: each key is `kid:base64key`")
        keys.append((kid.strip(), _key_bytes(key, f"PII key {kid.strip()!r}")))
    return keys


@functools.lru_cache(maxsize=8)
def _codec(keys: str, hash_key: str) -> PiiCodec:
    return PiiCodec(parse_keys(keys), _key_bytes(hash_key, "PII_HASH_KEY"))


def pii_codec(settings: Settings) -> PiiCodec:
    """The codec of these settings (one per distinct configuration, kept). Without keys only
    a development process (SALON_DEV) gets the published development ones."""
    keys, hash_key = settings.pii_keys, settings.pii_hash_key
    if not keys or not hash_key:
        if not settings.dev:
            raise PiiConfigError(
                "PII_KEYS and PII_HASH_KEY must be set (docs/security.md), or SALON_DEV=true"
                " for development"
            )
        keys, hash_key = keys or DEV_PII_KEYS, hash_key or DEV_PII_HASH_KEY
    return _codec(keys, hash_key)


def new_key() -> str:
    """A fresh key, base64 (what `salon pii new-key` prints)."""
    return base64.b64encode(os.urandom(32)).decode()
