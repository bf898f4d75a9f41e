"""Reading and writing a data directory of canonical tables, all-or-nothing.

A data directory holds each canonical table as `<table>.parquet` or as a directory of parts
`<table>/part-*.parquet` (what a distributed writer such as Spark produces), plus `manifest.json`;
extra, source-specific tables (synthetic ground truth, say) live under `extra/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from recsys.data.schema import TABLES
from recsys.data.validation import Problem, ValidationError, validated

MANIFEST = "manifest.json"
PARTS = "part-*.parquet"


def _read_csv(path: Path) -> pd.DataFrame:
    # Everything as text: types are decided by validation, which reports the row that does not parse.
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def read_source_dir(source: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Raw tables from `<table>.csv` / `<table>.parquet` files, with the file each came from."""
    source = Path(source)
    if not source.is_dir():
        raise ValidationError([Problem(str(source), None, None, None, "not a directory")])
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for path in sorted(source.iterdir()):
        name, suffix = path.name.split(".", 1)[0], "".join(path.suffixes)
        if suffix not in (".csv", ".parquet", ".csv.gz"):
            continue
        if name not in TABLES:
            problems.append(Problem(str(path), None, None, None, f"unknown table {name!r}"))
            continue
        if name in tables:
            problems.append(
                Problem(str(path), None, None, None, f"table {name!r} given twice ({files[name]})")
            )
            continue
        try:
            tables[name] = pd.read_parquet(path) if suffix == ".parquet" else _read_csv(path)
        except Exception as exc:  # unreadable file: report it, don't crash
            problems.append(Problem(str(path), None, None, None, f"cannot read: {exc}"))
            continue
        files[name] = str(path)
    if problems:
        raise ValidationError(problems)
    return tables, files


def _digest(tables: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def table_files(data_dir: Path, name: str) -> list[Path]:
    """The Parquet file(s) holding table `name` in a data directory: `<name>.parquet` or its parts."""
    single = Path(data_dir) / f"{name}.parquet"
    return [single] if single.exists() else sorted((Path(data_dir) / name).glob(PARTS))


def _read_files(files: list[Path]) -> pd.DataFrame:
    if len(files) == 1:
        return pd.read_parquet(files[0])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def digest(data_dir: Path) -> str:
    """Digest of the canonical tables written in a data directory, whoever wrote them (pandas here,
    Spark parts elsewhere): the tables read back and typed like `write_tables` types them, so it
    equals the manifest digest `write_tables` records for the same rows in the same order."""
    tables = {name: _read_files(files) for name in TABLES if (files := table_files(data_dir, name))}
    return _digest(validated(tables))


def write_tables(
    tables: dict[str, pd.DataFrame],
    out: Path,
    manifest: dict | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
    sources: dict[str, str] | None = None,
) -> dict:
    """Validate, then write every table into `out` atomically (temp dir + rename).

    On any problem a ValidationError is raised before a single file is touched in `out`.
    """
    out = Path(out)
    typed = validated(tables, sources)
    info = dict(manifest or {})
    info["tables"] = {name: len(df) for name, df in typed.items()}
    info["digest"] = _digest(typed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, df in typed.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        if extra:
            (tmp / "extra").mkdir()
            for name, df in extra.items():
                df.to_parquet(tmp / "extra" / f"{name}.parquet", index=False)
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, default=str))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _replace_dir(new: Path, target: Path) -> None:
    """Swap `new` into place; the old directory disappears only after the new one is in place."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def read_tables(data_dir: Path, skip: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Canonical tables of a prepared data directory (already validated when written). `skip` leaves
    out tables a caller does not use (the promotion calendar is tens of millions of rows)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).exists():
        raise FileNotFoundError(
            f"{data_dir} is not a prepared data directory (no {MANIFEST}); run 'recsys data prepare' first"
        )
    return {
        name: _read_files(files)
        for name in TABLES
        if name not in skip and (files := table_files(data_dir, name))
    }


def read_extra(data_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(data_dir) / "extra" / f"{name}.parquet")


def read_manifest(data_dir: Path) -> dict:
    return json.loads((Path(data_dir) / MANIFEST).read_text())


def import_dir(source: Path, out: Path, manifest: dict | None = None) -> dict:
    """CSV/Parquet import of canonical tables: the whole directory is accepted or nothing is written."""
    tables, files = read_source_dir(source)
    return write_tables(tables, out, {"source": str(source), **(manifest or {})}, sources=files)
