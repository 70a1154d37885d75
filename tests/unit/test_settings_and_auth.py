from __future__ import annotations

import time
import uuid

import jwt
import pytest
import time_machine

from salon import auth
from salon.auth import InvalidToken, Principal, decode_token, issue_token
from salon.settings import Settings


def test_settings_come_from_the_environment_with_types():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://x@h/db",
            "HOLD_TTL_SECONDS": "300",
            "API_WAIT_SECONDS": "2.5",
            "LOG_JSON": "false",
        }
    )
    assert s.database_url == "postgresql+psycopg://x@h/db"
    assert s.hold_ttl_seconds == 300 and s.api_wait_seconds == 2.5 and s.log_json is False
    assert s.redis_url == ""  # unset: `salon dev` starts an embedded server


def test_defaults_are_documented_for_every_setting():
    rows = Settings.documented()
    assert ("HOLD_TTL_SECONDS", "600", "hold_ttl_seconds") in rows
    assert len({r[0] for r in rows}) == len(rows)


SETTINGS = Settings(jwt_secret="s" * 64)
BIZ = uuid.UUID("00000000-0000-0000-0000-000000000001")


def test_a_token_round_trips_into_a_principal():
    sub = uuid.uuid4()
    p = decode_token(SETTINGS, issue_token(SETTINGS, role="admin", biz=BIZ, sub=sub))
    assert p == Principal(sub, "admin", BIZ)
    assert p.key == f"admin:{sub}"


def _claims(role: str = "admin", exp: int | None = 60) -> dict:
    claims = {"sub": str(uuid.uuid4()), "role": role}
    if exp is not None:
        claims["exp"] = int(time.time()) + exp
    return claims


@pytest.mark.parametrize(
    "claims, key, alg",
    [
        (_claims(exp=-60), "s" * 64, "HS256"),
        (_claims(exp=None), "s" * 64, "HS256"),  # no exp
        (_claims("root"), "s" * 64, "HS256"),
        (_claims(), "t" * 64, "HS256"),
        (_claims(), "s" * 64, "HS512"),
    ],
    ids=["expired", "no-exp", "unknown-role", "wrong-secret", "other-algorithm"],
)
def test_bad_tokens_are_refused(claims, key, alg):
    with pytest.raises(InvalidToken):
        decode_token(SETTINGS, jwt.encode(claims, key, algorithm=alg))


def test_an_unsigned_token_is_refused():
    token = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(InvalidToken):
        decode_token(SETTINGS, token)


def test_a_verified_token_is_not_verified_again_while_it_lasts():
    token = issue_token(SETTINGS, role="user", biz=None, sub=uuid.uuid4())
    first = decode_token(SETTINGS, token)
    assert decode_token(SETTINGS, token) is first  # the kept principal, no second check


def test_a_kept_token_still_expires():
    # exp 4 s ago: valid now within the 5 s leeway, refused once the leeway has passed too.
    token = jwt.encode(_claims("user", exp=-4), SETTINGS.jwt_secret, algorithm="HS256")
    decode_token(SETTINGS, token)
    # 1.2 s later by the clocks the check reads (time.time for the kept token, datetime.now
    # for PyJWT's): moved, not slept through.
    with time_machine.travel(time.time() + 1.2, tick=False), pytest.raises(InvalidToken):
        decode_token(SETTINGS, token)


def test_a_token_kept_under_one_secret_is_refused_under_another():
    token = issue_token(SETTINGS, role="user", biz=None, sub=uuid.uuid4())
    decode_token(SETTINGS, token)
    rotated = Settings(jwt_secret="r" * 64)
    with pytest.raises(InvalidToken):
        decode_token(rotated, token)


def test_the_kept_tokens_are_bounded(monkeypatch):
    monkeypatch.setattr(auth, "MAX_VERIFIED", 3)
    for _ in range(10):
        decode_token(SETTINGS, issue_token(SETTINGS, role="user", biz=None, sub=uuid.uuid4()))
        assert len(auth._verified) <= 3
