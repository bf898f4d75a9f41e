"""Frozen mapping between external ids (strings) and dense internal indices."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


class UnknownIdError(KeyError):
    """An external id that the map does not know; carries the offending ids for the message."""

    def __init__(self, kind: str, ids: list[str]):
        self.kind = kind
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        super().__init__(f"unknown {kind} id(s): {shown}")


class IdMap:
    """External id <-> internal index. Immutable: `add` returns a new map and old ids never move.

    Internal indices are the row numbers of the model's matrices, so moving an id would silently
    hand one customer's history to another.
    """

    __slots__ = ("_index", "kind")

    def __init__(self, external_ids: Iterable[object], kind: str = "id"):
        index = pd.Index(pd.array([str(x) for x in external_ids], dtype=object), dtype=object)
        if not index.is_unique:
            dup = index[index.duplicated()].unique().tolist()
            raise ValueError(f"duplicate {kind} ids: {dup[:5]}")
        self._index = index
        self.kind = kind

    @classmethod
    def from_values(cls, values: Iterable[object], kind: str = "id") -> IdMap:
        """Map built from the unique values in first-seen order."""
        return cls(pd.unique(pd.Series(list(values), dtype=object).astype(str)), kind)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, external_id: object) -> bool:
        return str(external_id) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"IdMap(kind={self.kind!r}, size={len(self)})"

    @property
    def external_ids(self) -> np.ndarray:
        return self._index.to_numpy(dtype=object)

    def to_internal(self, external_ids: Iterable[object], strict: bool = True) -> np.ndarray:
        """Indices for ids; unknown ids raise (strict) or map to -1."""
        keys = pd.Index([str(x) for x in external_ids], dtype=object)
        idx = self._index.get_indexer(keys)
        if strict and (idx < 0).any():
            raise UnknownIdError(self.kind, keys[idx < 0].tolist())
        return idx.astype(np.int64)

    def to_external(self, internal: Iterable[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(internal, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise IndexError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self.external_ids[arr]

    def add(self, external_ids: Iterable[object]) -> IdMap:
        """New map with unseen ids appended at the end; existing indices are unchanged."""
        keys = pd.Index(pd.unique(pd.Series([str(x) for x in external_ids], dtype=object)), dtype=object)
        new = keys[~keys.isin(self._index)]
        return IdMap(self._index.append(new), self.kind)

    def to_list(self) -> list[str]:
        return self._index.tolist()
