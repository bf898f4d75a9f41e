"""`recsys serve --env-file .env` (what `make main` runs): a key generated once, then reused."""

from __future__ import annotations

import argparse
import stat

from cli.envfile import ensure_api_key, read_env_file
from cli.main import build_parser
from cli.serving import serve_env
from serving.auth import SCOPES, config_entry, parse_keys


def _args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *extra])


def test_a_key_is_generated_once_and_read_back(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# settings\nRECSYS_WORKERS=1")
    key, made = ensure_api_key(env_file)
    assert made and len(key) >= 24
    assert ensure_api_key(env_file) == (key, False)
    entry = config_entry(key, SCOPES)  # the server holds the digest only, with every scope
    assert read_env_file(env_file) == {"RECSYS_WORKERS": "1", "RECSYS_API_KEY": key, "RECSYS_API_KEYS": entry}
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env = serve_env(_args("--env-file", str(env_file)), base={})
    assert env["RECSYS_API_KEYS"] == entry
    assert parse_keys(env["RECSYS_API_KEYS"])[0].scopes == frozenset(SCOPES)


def test_hand_configured_keys_are_left_alone(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"RECSYS_API_KEYS={config_entry('k', ['read'])}\n")
    assert ensure_api_key(env_file) == (None, False)


def test_the_shell_environment_wins_over_the_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("RECSYS_API_KEYS=from-file\n")
    env = serve_env(_args("--env-file", str(env_file)), base={"RECSYS_API_KEYS": "from-shell"})
    assert env["RECSYS_API_KEYS"] == "from-shell"
