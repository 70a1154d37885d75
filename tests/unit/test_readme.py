from pathlib import Path

from salon.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_starts_with_the_two_commands():
    head = README[:1200]
    assert "make run" in head and "make test" in head


def test_every_setting_is_in_the_configuration_table():
    missing = [env for env, _, _ in Settings.documented() if f"`{env}`" not in README]
    assert missing == []
