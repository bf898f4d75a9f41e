"""Checks a loaded model's arrays before it can score anything.

A readable but wrong file (an index past the end of the catalog, a negative row pointer, a factor
matrix of the wrong shape, text where numbers belong) must be refused at load: used, it can crash
the process inside compiled code (scipy's sparse tools) instead of raising. Rules are by array name,
so every model's state is covered without per-model code: `*_indptr/_indices/_data/_shape` are a
CSR matrix over items, `user_*` has a row per customer and `item_*` a row per product.
"""

from __future__ import annotations

import numpy as np


class ModelCorrupt(ValueError):
    """The model files are damaged or inconsistent; the reason names the file and the array."""


def _fail(where: str, why: str) -> None:
    raise ModelCorrupt(f"{where}: {why}")


def check_csr(where: str, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int) -> None:
    for name, a in (("indptr", indptr), ("indices", indices)):
        if a.ndim != 1 or a.dtype.kind not in "iu":
            _fail(where, f"{name} must be a 1-d integer array, got {a.dtype} with shape {a.shape}")
    if len(indptr) != n_rows + 1:
        _fail(where, f"indptr has {len(indptr)} entries, expected {n_rows + 1}")
    if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        _fail(where, "indptr is not a valid row pointer (starts at 0, never decreases, ends at nnz)")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
        _fail(where, f"column index out of range [0, {n_cols}): {indices.min()}..{indices.max()}")


def _check_rows(where: str, a: np.ndarray, n: int, what: str) -> None:
    if a.ndim == 0 or a.shape[0] != n:
        _fail(where, f"expected {n} rows (one per {what}), got shape {a.shape}")


def validate_arrays(arrays: dict[str, np.ndarray], n_users: int, n_items: int, where: str) -> None:
    """Raise ModelCorrupt naming the first array that cannot be what a model of this size holds."""
    for key in ("seen_indptr", "seen_indices", "item_popularity"):
        if key not in arrays:
            _fail(where, f"array {key!r} is missing")
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            _fail(f"{where}:{key}", f"numbers expected, got dtype {a.dtype}")
    check_csr(f"{where}:seen", arrays["seen_indptr"], arrays["seen_indices"], n_users, n_items)
    _check_rows(f"{where}:item_popularity", arrays["item_popularity"], n_items, "product")
    state = {k[len("state_") :]: v for k, v in arrays.items() if k.startswith("state_")}
    for prefix in sorted({k[: -len("_indptr")] for k in state if k.endswith("_indptr")}):
        shape = state.get(f"{prefix}_shape")
        data, indices = state.get(f"{prefix}_data"), state.get(f"{prefix}_indices")
        if shape is None or data is None or indices is None or shape.shape != (2,):
            _fail(f"{where}:{prefix}", "incomplete sparse matrix (indptr, indices, data, shape)")
        n_rows, n_cols = (int(x) for x in shape)
        if n_cols != n_items or n_rows not in (n_users, n_items):
            _fail(
                f"{where}:{prefix}",
                f"shape {tuple(shape)} does not fit {n_users} customers x {n_items} products",
            )
        if len(data) != len(indices):
            _fail(f"{where}:{prefix}", f"{len(data)} values for {len(indices)} indices")
        check_csr(f"{where}:{prefix}", state[f"{prefix}_indptr"], indices, n_rows, n_cols)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, a in state.items():
        if key.startswith("user_"):
            _check_rows(f"{where}:{key}", a, n_users, "customer")
            pairs.setdefault(key[len("user_") :], {})["user"] = a
        elif key.startswith("item_"):
            _check_rows(f"{where}:{key}", a, n_items, "product")
            pairs.setdefault(key[len("item_") :], {})["item"] = a
    for name, pair in pairs.items():
        u, i = pair.get("user"), pair.get("item")
        if u is not None and i is not None and u.ndim == 2 and (i.ndim != 2 or u.shape[1] != i.shape[1]):
            _fail(f"{where}:{name}", f"user {u.shape} and item {i.shape} factors differ in width")
