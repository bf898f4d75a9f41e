"""Shared bits of the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def one_line(exc: BaseException) -> str:
    """The error message on one line; an OSError names the file (`recsys ... --out /missing/x.csv`)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc)
    if isinstance(exc, KeyError):  # str(KeyError) quotes its message
        text = text.strip("\"'")
    text = text or type(exc).__name__
    return " ".join(text.split())


def stdout_closed() -> int:
    """The reader of our stdout went away (`recsys data schema | head`): stop quietly, like Unix tools.

    Python would otherwise print a BrokenPipeError traceback while flushing stdout at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def output_path(text: str) -> Path:
    """An output file whose directory exists: checked before minutes of work, not after."""
    path = Path(text)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory {parent} does not exist (for {path})")
    if path.is_dir():
        raise ValueError(f"output {path} is a directory; give a file name")
    return path


def read_users(path: Path) -> list[str]:
    """One user id per line, or a CSV with a user_id column."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"users file {path} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    header = lines[0].lower() if lines else ""
    if "," in header or header in ("user_id", "customer_id"):
        frame = pd.read_csv(path, dtype=str)
        column = next((c for c in ("user_id", "customer_id") if c in frame.columns), None)
        if column is None:
            raise ValueError(f"{path}: a CSV users file needs a user_id column, found {list(frame.columns)}")
        return frame[column].dropna().str.strip().tolist()
    return lines


def batch_customers(users: list[str]) -> tuple[list[str], int, set[str]]:
    """The listed customers a batch command may answer, from the event store (training/privacy.py):
    (ids without the erased ones, how many were erased, ids who withdrew personalisation consent).
    Erased ids are left out of the output entirely; withdrawn ones get the non-personalised answer."""
    from training.privacy import read_privacy

    privacy = read_privacy()
    gone = privacy.erased(set(users))
    kept = [u for u in users if u not in gone]
    return kept, len(gone), privacy.withdrawn() & set(kept)


def privacy_note(erased: int, withdrawn: set[str]) -> str:
    """The summary line's part about erased and non-consenting customers (counts only)."""
    parts = [f"{erased} erased customer(s) left out"] if erased else []
    if withdrawn:
        parts.append(f"{len(withdrawn)} without personalisation consent got the non-personalised list")
    return f" ({'; '.join(parts)})" if parts else ""
