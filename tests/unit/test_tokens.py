"""Token checks beyond the signature: RS256 with a real key pair, audience, issuer, lifetime,
forged tokens; and the refusal of a secret anyone may know."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from salon.auth import InvalidToken, Principal, decode_token, startup_refusal, weak_secret
from salon.settings import DEV_JWT_SECRET, Settings

SECRET = "6f1c0e3d9a2b47f58c3e1d7a9b0c2e4f6a8b0d1e3f5a7c9e"
BIZ = uuid.UUID("00000000-0000-0000-0000-000000000001")


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def claims(lifetime: int = 600, *, iat: bool = True, **extra: object) -> dict[str, object]:
    now = int(time.time())
    out: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "role": "manager",
        "biz": str(BIZ),
        "exp": now + lifetime,
    }
    if iat:
        out["iat"] = now
    out.update(extra)
    return out


def test_an_rs256_token_signed_with_the_private_key_is_accepted(key_pair):
    private_pem, public_pem = key_pair
    settings = Settings.from_env({"JWT_SECRET": SECRET, "JWT_PUBLIC_KEY": public_pem})
    c = claims()
    principal = decode_token(settings, jwt.encode(c, private_pem, algorithm="RS256"))
    assert principal == Principal(uuid.UUID(str(c["sub"])), "manager", BIZ)


def test_an_rs256_token_of_another_key_is_refused(key_pair):
    _, public_pem = key_pair
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = Settings(jwt_secret=SECRET, jwt_public_key=public_pem)
    with pytest.raises(InvalidToken):
        decode_token(settings, jwt.encode(claims(), other, algorithm="RS256"))


def hs256_by_hand(payload: dict[str, object], key: bytes) -> str:
    """HS256 with any key: PyJWT itself refuses to use a PEM key as an HMAC secret."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_the_public_key_used_as_an_hs256_secret_is_refused(key_pair):
    """Algorithm confusion: a forger who knows the public key signs HS256 with it."""
    _, public_pem = key_pair
    settings = Settings(jwt_secret=SECRET, jwt_public_key=public_pem)
    assert decode_token(settings, hs256_by_hand(claims(), SECRET.encode())).role == "manager"
    with pytest.raises(InvalidToken):
        decode_token(settings, hs256_by_hand(claims(), public_pem.encode()))


def test_a_token_signed_with_the_development_secret_is_refused_by_a_real_secret():
    token = jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_token(Settings(jwt_secret=SECRET), token)


@pytest.mark.parametrize(
    ("lifetime", "iat", "accepted"),
    [
        (3600, True, True),
        (86400, True, True),
        (86400 + 3600, True, False),
        (10**9, True, False),  # year 2050-something
        (250_000_000_000, False, False),  # exp near year 9900, no iat
        (3600, False, True),
    ],
)
def test_a_token_living_longer_than_the_cap_is_refused(lifetime, iat, accepted):
    settings = Settings(jwt_secret=SECRET)  # JWT_MAX_LIFETIME_SECONDS: 86400 by default
    token = jwt.encode(claims(lifetime, iat=iat), SECRET, algorithm="HS256")
    if accepted:
        assert decode_token(settings, token).role == "manager"
    else:
        with pytest.raises(InvalidToken):
            decode_token(settings, token)


def test_an_old_iat_with_a_near_exp_is_still_a_long_lived_token():
    now = int(time.time())
    token = jwt.encode(claims(iat=False) | {"iat": now - 2 * 86400}, SECRET, "HS256")
    with pytest.raises(InvalidToken):
        decode_token(Settings(jwt_secret=SECRET), token)


def test_the_cap_follows_its_setting():
    token = jwt.encode(claims(7200), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_token(Settings(jwt_secret=SECRET, jwt_max_lifetime_seconds=3600), token)
    assert decode_token(Settings(jwt_secret=SECRET, jwt_max_lifetime_seconds=0), token)


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [
        ({"aud": "salon-api", "iss": "https://id.example"}, True),
        ({"aud": ["other", "salon-api"], "iss": "https://id.example"}, True),
        ({"aud": "other-api", "iss": "https://id.example"}, False),
        ({"iss": "https://id.example"}, False),  # no aud
        ({"aud": "salon-api", "iss": "https://evil.example"}, False),
        ({"aud": "salon-api"}, False),  # no iss
    ],
)
def test_audience_and_issuer_are_checked_when_configured(extra, accepted):
    settings = Settings(
        jwt_secret=SECRET, jwt_audience="salon-api", jwt_issuer="https://id.example"
    )
    token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
    if accepted:
        assert decode_token(settings, token).biz == BIZ
    else:
        with pytest.raises(InvalidToken):
            decode_token(settings, token)


@pytest.mark.parametrize(
    "secret",
    [
        DEV_JWT_SECRET,
        "",
        "   ",
        "changeme",
        "secret",
        "CHANGE-ME-to-at-least-32-random-bytes",  # deploy/k8s/secret.yaml's placeholder
        "compose-dev-secret-not-for-production-0123456789",  # docker-compose.yml's
        "a-short-but-random-Q7x",
        "x" * 64,
    ],
)
def test_weak_secrets_are_named_and_refuse_a_production_start(secret):
    assert weak_secret(secret) is not None
    refusal = startup_refusal(Settings(jwt_secret=secret))
    assert refusal is not None and "JWT_SECRET" in refusal
    assert startup_refusal(Settings(jwt_secret=secret, dev=True)) is None


def test_a_random_secret_starts():
    assert weak_secret(SECRET) is None
    assert startup_refusal(Settings(jwt_secret=SECRET)) is None
