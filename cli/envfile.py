"""A `.env` file for `make main`: settings in KEY=VALUE lines, and an API key generated once.

`recsys serve --env-file .env` reads the file into the server's environment (variables already set
in the shell win) and, when it holds no RECSYS_API_KEYS, generates a key and appends it (file mode
0600), so the README's write examples work with `Authorization: Bearer <that key>`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_VAR = "RECSYS_API_KEYS"


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


def ensure_api_key(path: Path) -> tuple[str, bool]:
    """(the first key in the file, whether it was generated now)."""
    values = read_env_file(path)
    keys = [k.strip() for k in values.get(KEY_VAR, "").split(",") if k.strip()]
    if keys:
        return keys[0], False
    key = secrets.token_urlsafe(24)
    prefix = "" if not path.exists() or path.read_text().endswith("\n") or not path.read_text() else "\n"
    with path.open("a") as f:
        f.write(f"{prefix}{KEY_VAR}={key}\n")
    os.chmod(path, 0o600)
    return key, True
