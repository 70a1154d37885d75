import uuid

from click.testing import CliRunner

from salon.auth import decode_token
from salon.cli import main
from salon.settings import Settings


def test_salon_token_prints_only_a_jwt_with_the_given_claims():
    biz, sub = uuid.uuid4(), uuid.uuid4()
    result = CliRunner().invoke(
        main,
        ["token", "--role", "manager", "--biz", str(biz), "--sub", str(sub), "--ttl", "60"],
        env={"JWT_SECRET": "x" * 40},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    principal = decode_token(Settings(jwt_secret="x" * 40), lines[0])
    assert (principal.role, principal.biz, principal.sub) == ("manager", biz, sub)


def test_salon_token_refuses_an_unknown_role():
    result = CliRunner().invoke(main, ["token", "--role", "root"])
    assert result.exit_code != 0


def test_every_documented_command_exists():
    assert set(main.commands) >= {
        "dev",
        "api",
        "worker",
        "scheduler",
        "migrate",
        "seed",
        "token",
        "generate",
    }
