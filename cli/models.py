"""`recsys train` and `recsys recommend`: batch training and inference for other teams.

    recsys train --config FILE [--out MODEL_DIR] [--param key=value ...]   (params override the config)
    recsys train --data DIR --until DATE --model NAME --out MODEL_DIR [--param key=value ...] [--no-track]
    recsys recommend --model MODEL_DIR --users FILE --k N --out recs.csv [--exclude-seen]
        [--basket ID,ID,...]  (complete that basket for every user; --data adds basket co-occurrence)
                     [--diet NAME[,NAME]] [--co2-weight X] [--engine local|spark]

Both train forms are tracked in MLflow (training.jobs) unless --no-track.

Bad input (unknown model, bad date or parameter, missing file, k <= 0) raises ValueError /
FileNotFoundError, which cli.main turns into a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import batch_customers, output_path, privacy_note, read_users

if TYPE_CHECKING:
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
    check_param_types(cls, params)
    return cls(**params)


def check_param_types(cls: type, params: dict[str, object]) -> None:
    """A value must have its default's type (an int also passes for a float): `factors=abc` is a
    one-line error now, not a TypeError minutes into the fit."""
    import inspect

    defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
    for name, value in params.items():
        default = defaults.get(name, inspect.Parameter.empty)
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = type(default).__name__
            raise ValueError(f"parameter {name}={value!r} of model {cls.__name__} must be a {kind}")


def parse_date(text: str):
    import pandas as pd

    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad date {text!r} (use e.g. 2017-12-04 or '2017-12-04 05:00')") from exc


def _cmd_train(args: argparse.Namespace) -> int:
    if args.config:
        if any(getattr(args, f) for f in ("data", "until", "model")):
            raise ValueError("use either --config FILE or --data/--until/--model flags, not both")
        from training.config import load_config
        from training.jobs import run_training

        config = load_config(Path(args.config))
        if args.basket_rerank:
            model = config.model.model_copy(update={"basket_rerank": True})
            config = config.model_copy(update={"model": model})
        params = dict(parse_param(p) for p in args.param or [])
        make_model(config.model.name, {**config.model.params, **params})  # fail fast, one line
        run_id = run_training(config.with_params(params), out=Path(args.out) if args.out else None)
        print(f"MLflow run {run_id}" + (f"; model saved to {args.out}" if args.out else ""))
        return 0
    missing = [f"--{f}" for f in ("data", "until", "model", "out") if not getattr(args, f)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (or use --config FILE)")
    until = parse_date(args.until)
    params = dict(parse_param(p) for p in args.param or [])
    make_model(args.model, params)  # fail fast on an unknown model or parameter
    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"data directory {data} does not exist")
    if args.no_track:
        return _train_untracked(data, until, args.model, params, Path(args.out), args.basket_rerank)
    from training.jobs import train_from_flags

    run_id = train_from_flags(
        data, str(until), args.model, params, out=Path(args.out), basket_rerank=args.basket_rerank
    )
    print(f"MLflow run {run_id}; model saved to {args.out}")
    return 0


def _lines_in(data: Path) -> int | None:
    """Purchase lines of a prepared data directory, from its manifest (None when it does not say)."""
    from recsys.data.io import read_manifest

    try:
        return int(read_manifest(data)["tables"]["interactions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _train_untracked(
    data: Path, until, model_name: str, params: dict, out: Path, basket_rerank: bool = False
) -> int:
    from recsys.models.model_dir import save_model_dir
    from training.data import load_without_erased

    model = make_model(model_name, params)
    # untracked is no excuse to keep erased customers; the lines from `until` on are never read;
    # models that learn from per-pair aggregates leave the lines on disk (out of core)
    lines = _lines_in(data)
    small = lines is not None and lines <= model.memory_lines  # an unknown size stays out of core
    in_memory = basket_rerank or not model.fits_out_of_core or small
    unused = ("offers", "engagement", "campaign_products") + (
        () if in_memory or model.reads_promotions else ("promotions",)
    )
    train, erased = load_without_erased(data, before=until, in_memory=in_memory, skip=unused)
    if train.n_lines == 0:
        raise ValueError(f"no interactions before {until} in {data}")
    start = time.perf_counter()
    model.fit(train)
    save_model_dir(model, train.items_table, out, train.basket_lines(), train if basket_rerank else None)
    print(
        f"Trained {model!r} on {train.n_lines:,} interactions before {until} "
        f"in {time.perf_counter() - start:.1f}s -> {out} (not tracked; {erased} erased customer(s) left out)"
    )
    return 0


#: Customers answered and written per block by `recsys recommend`.
RECOMMEND_BLOCK = 20_000


def _cmd_recommend(args: argparse.Namespace) -> int:
    if args.k <= 0:
        raise ValueError(f"--k must be positive, got {args.k}")
    out = output_path(args.out)
    model_dir = Path(args.model)
    if not (model_dir / "model.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved model (no model.json)")
    users, erased, withdrawn = batch_customers(read_users(Path(args.users)))
    from recsys.data.csv_safety import write_csv
    from recsys.diet.profiles import as_profile
    from recsys.personalize import load_selector
    from recsys.ranking.basket import BasketCompleter
    from recsys.ranking.selection import ProductQuery

    if args.co2_weight < 0:
        raise ValueError(f"--co2-weight must be >= 0, got {args.co2_weight}")
    profile = as_profile(args.diet)  # ValueError names an unknown diet
    data = Path(args.data) if args.data else None
    selector = load_selector(model_dir, data)
    model = selector.model
    basket = tuple(b for b in (args.basket or "").split(",") if b)
    if args.basket is not None and not basket:
        raise ValueError("--basket needs at least one product id")
    if basket and args.exclude_seen:
        raise ValueError("--basket and --exclude-seen do not combine; choose one")
    if basket:  # saved with the model; else built from --data's baskets; else the model's similarity
        selector.baskets = BasketCompleter.load(model_dir)
        if selector.baskets is None and args.data:
            selector.baskets = basket_completer(Path(args.data), selector)
    mode = "complete_basket" if basket else "discover" if args.exclude_seen else "mixed"
    query = ProductQuery(k=args.k, mode=mode, co2_weight=args.co2_weight, basket=basket)
    if args.engine == "spark":
        if basket:
            raise ValueError("--engine spark does not complete baskets; drop --basket or use --engine local")
        from training.spark.score import recommend_spark

        recs = recommend_spark(model_dir, users, query, profile, withdrawn, data).toPandas()
        write_csv(recs, out)
        written = len(recs)
    else:
        written = 0
        for lo in range(0, max(len(users), 1), RECOMMEND_BLOCK):  # block by block: memory follows the block
            block = users[lo : lo + RECOMMEND_BLOCK]
            shoppers = [selector.shopper(u, profile, personalised=u not in withdrawn) for u in block]
            recs = selector.recommend_frame([query] * len(block), shoppers)
            write_csv(recs, out, append=lo > 0)
            written += len(recs)
    unknown = sum(u not in model.users_ for u in set(users))
    print(
        f"Wrote {written:,} recommendations for {len(users):,} users to {args.out}"
        + (f" (diet {args.diet})" if args.diet else "")
        + (f" ({unknown} unknown users got the non-personalised list)" if unknown else "")
        + privacy_note(erased, withdrawn)
    )
    return 0


def basket_completer(data: Path, selector):
    """Basket co-occurrence from a data directory's baskets (a sample of them in a national
    program's data: `Dataset.basket_lines`), on the selector's item rows."""
    from recsys.data.dataset import Dataset
    from recsys.data.io import read_tables
    from recsys.ranking.basket import BasketCompleter

    tables = read_tables(data, skip=("promotions", "interactions"))
    dataset = Dataset.from_tables(tables, lines=data, in_memory=False)
    to_model = selector.item_index(dataset.items.to_list())
    return BasketCompleter.from_interactions(dataset.basket_lines(), selector.n_items, to_model=to_model)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit a model on events strictly before a date and save it")
    p.add_argument(
        "--config", help="experiment config (experiments/configs/*.yaml); replaces the flags below"
    )
    p.add_argument("--data", help="prepared data directory")
    p.add_argument("--until", help="train on events strictly before this date/time")
    p.add_argument("--model", help="model name (popularity, buy_again, als, ...)")
    p.add_argument("--out", help="model directory to write (model + items.parquet)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="model parameter (repeatable)")
    p.add_argument("--no-track", action="store_true", help="fit and save without an MLflow run")
    p.add_argument(
        "--basket-rerank",
        action="store_true",
        help="also fit the learned basket re-ranker (configs: model.basket_rerank)",
    )
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("recommend", help="top-k products for a list of customers (CSV)")
    p.add_argument("--model", required=True, help="model directory written by `recsys train`")
    p.add_argument("--users", required=True, help="file: one user id per line, or a CSV with user_id")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--out", required=True, help="output CSV: user_id,item_id,rank,score,reason")
    p.add_argument("--exclude-seen", action="store_true", help="only products the user never bought")
    p.add_argument("--diet", help="apply a diet to every user, e.g. vegan or gluten-free,nuts (fail-closed)")
    p.add_argument("--co2-weight", type=float, default=0.0, help="CO2e re-ranking weight (0 = off)")
    p.add_argument("--data", help="data directory, if the model dir has no items.parquet")
    p.add_argument("--basket", help="complete this basket (comma-separated product ids) for every user")
    p.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="spark: select in Spark tasks (docs/spark.md)",
    )
    p.set_defaults(func=_cmd_recommend)
