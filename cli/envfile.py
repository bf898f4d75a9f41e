"""A `.env` file for `make main`: settings in KEY=VALUE lines, and an API key generated once.

`recsys serve --env-file .env` reads the file into the server's environment (variables already set
in the shell win) and, when it holds no keys, generates one with every scope and appends two lines
(file mode 0600): RECSYS_API_KEY, the key itself for the local client (the README's examples read it),
and RECSYS_API_KEYS, the server's hashed entry for it (serving/auth.py); the server never sees the
plain key.
"""

from __future__ import annotations

import os
from pathlib import Path

KEY_VAR = "RECSYS_API_KEYS"  # the server's hashed entries
CLIENT_VAR = "RECSYS_API_KEY"  # the plain key, for the local client only


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; surrounding quotes removed."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path} line {n}: expected KEY=VALUE, got {text!r}")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def ensure_api_key(path: Path) -> tuple[str | None, bool]:
    """(the local client key, whether it was generated now); None when keys were configured by hand."""
    from serving.auth import SCOPES, new_key

    values = read_env_file(path)
    if values.get(CLIENT_VAR):
        return values[CLIENT_VAR], False
    if values.get(KEY_VAR):
        return None, False
    key, entry = new_key(SCOPES)
    prefix = "" if not path.exists() or path.read_text().endswith("\n") or not path.read_text() else "\n"
    with path.open("a") as f:
        f.write(f"{prefix}{CLIENT_VAR}={key}\n{KEY_VAR}={entry}\n")
    os.chmod(path, 0o600)
    return key, True
