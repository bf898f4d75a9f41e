"""`recsys train` and `recsys recommend`: batch training and inference for other teams.

    recsys train --data DIR --until DATE --model NAME --out MODEL_DIR [--param key=value ...]
    recsys recommend --model MODEL_DIR --users FILE --k N --out recs.csv [--exclude-seen]

Bad input (unknown model, bad date or parameter, missing file, k <= 0) raises ValueError /
FileNotFoundError, which recsys.cli turns into a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from recsys.models.base import Recommender


def parse_param(text: str) -> tuple[str, object]:
    """key=value with the value read as JSON when it parses (numbers, true/false, null), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param must look like key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def make_model(name: str, params: dict[str, object]) -> Recommender:
    import recsys.models  # noqa: F401  (registers every model)
    from recsys.models.base import Recommender

    cls = Recommender.registry.get(name)
    if cls is None:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(Recommender.registry))}")
    unknown = sorted(set(params) - set(cls.param_names()))
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown}; it takes {cls.param_names()}")
    return cls(**params)


def parse_date(text: str):
    import pandas as pd

    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad date {text!r} (use e.g. 2017-12-04 or '2017-12-04 05:00')") from exc


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


def recommend_for_users(
    model: Recommender,
    users: list[str],
    k: int,
    exclude_seen: bool = False,
    allowed: np.ndarray | None = None,
) -> pd.DataFrame:
    """user_id, item_id, rank, score (original ids). Unknown users get the fallback list."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return model.recommend(users, k=k, allowed=allowed, exclude_seen=exclude_seen)


def _cmd_train(args: argparse.Namespace) -> int:
    from recsys.data.dataset import Dataset
    from recsys.data.splits import temporal_split

    until = parse_date(args.until)
    params = dict(parse_param(p) for p in args.param or [])
    model = make_model(args.model, params)
    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"data directory {data} does not exist")
    train = temporal_split(Dataset.load(data), until).train
    if len(train.interactions) == 0:
        raise ValueError(f"no interactions before {until} in {data}")
    start = time.perf_counter()
    model.fit(train)
    model.save(Path(args.out))
    print(
        f"Trained {model!r} on {len(train.interactions):,} interactions before {until} "
        f"in {time.perf_counter() - start:.1f}s -> {args.out}"
    )
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from recsys.models.base import Recommender

    if args.k <= 0:
        raise ValueError(f"--k must be positive, got {args.k}")
    model_dir = Path(args.model)
    if not (model_dir / "model.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved model (no model.json)")
    import recsys.models  # noqa: F401

    model = Recommender.load(model_dir)
    users = read_users(Path(args.users))
    recs = recommend_for_users(model, users, args.k, exclude_seen=args.exclude_seen)
    recs.to_csv(args.out, index=False)
    unknown = sum(u not in model.users_ for u in set(users))
    print(
        f"Wrote {len(recs):,} recommendations for {len(users):,} users to {args.out}"
        + (f" ({unknown} unknown users got the non-personalised list)" if unknown else "")
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit a model on events strictly before a date and save it")
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--until", required=True, help="train on events strictly before this date/time")
    p.add_argument("--model", required=True, help="model name (popularity, buy_again, als, ...)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="model parameter (repeatable)")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("recommend", help="top-k products for a list of customers (CSV)")
    p.add_argument("--model", required=True, help="model directory written by `recsys train`")
    p.add_argument("--users", required=True, help="file: one user id per line, or a CSV with user_id")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--out", required=True, help="output CSV: user_id,item_id,rank,score")
    p.add_argument("--exclude-seen", action="store_true", help="only products the user never bought")
    p.set_defaults(func=_cmd_recommend)
