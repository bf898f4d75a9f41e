"""Damaged copies of a saved model, for proving that loading refuses them (tests, benchmarks).

Each corruption copies a model directory and breaks one thing. Some keep `checksums.json` consistent
(a writer bug: the files are "valid" but wrong, so only the array checks can catch them); others
damage a file after save (the recorded checksum no longer matches).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys.models.model_dir import write_checksums


def _arrays(d: Path) -> dict[str, np.ndarray]:
    with np.load(d / "arrays.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(d: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(d / "arrays.npz", **arrays)
    write_checksums(d)  # consistent checksums: the damage is in the content


def seen_index_out_of_range(d: Path) -> None:
    a = _arrays(d)
    idx = a["seen_indices"].copy()
    idx[len(idx) // 2] = 10_000_000
    _rewrite(d, {**a, "seen_indices": idx})


def indptr_decreasing(d: Path) -> None:
    a = _arrays(d)
    ptr = a["seen_indptr"].copy()
    ptr[1] = ptr[-1] + 5
    _rewrite(d, {**a, "seen_indptr": ptr})


def factors_wrong_shape(d: Path) -> None:
    a = _arrays(d)
    key = next(k for k in a if k.startswith("state_item_"))
    _rewrite(d, {**a, key: a[key][:-1]})


def indices_as_floats(d: Path) -> None:
    a = _arrays(d)
    _rewrite(d, {**a, "seen_indices": a["seen_indices"].astype(np.float64) + 0.5})


def truncated_arrays(d: Path) -> None:
    path = d / "arrays.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def bit_flip(d: Path) -> None:
    path = d / "arrays.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def model_json_garbage(d: Path) -> None:
    (d / "model.json").write_text('{"format_version": 1, "model": "als", "users": [')
    write_checksums(d)


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    f.__name__: f
    for f in (
        seen_index_out_of_range,
        indptr_decreasing,
        factors_wrong_shape,
        indices_as_floats,
        truncated_arrays,
        bit_flip,
        model_json_garbage,
    )
}


def corrupt_copy(model_dir: Path, out: Path, name: str) -> Path:
    """A copy of `model_dir` at `out` with corruption `name` applied."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(model_dir, out)
    CORRUPTIONS[name](out)
    return out
