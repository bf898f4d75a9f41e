"""`recsys tune | register | promote | compare | pipeline`: the MLflow/Optuna side of the CLI.

Handlers import MLflow lazily, so `recsys --help` and the data commands stay fast.
"""

from __future__ import annotations

import argparse
import sys

from cli.common import EXIT_BAD_INPUT

EXIT_REFUSED = 1


def _cmd_tune(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.tune import tune

    config = load_config(args.config)
    result = tune(
        config,
        args.trials,
        study_name=args.study,
        storage=args.storage,
        seed=args.seed,
        holdout=not args.no_holdout,
        timeout=args.timeout,
    )
    print(f"study {result.study_name} ({result.storage}): {result.n_trials} trials, {result.n_pruned} pruned")
    print(f"parent run {result.parent_run_id}")
    if not args.no_holdout:
        print(f"  it holds the best params' model: recsys register --run {result.parent_run_id}")
    print(f"default params: {result.default_params}")
    print(f"best params:    {result.best_params}")
    print(result.table())
    return 0


def _registry_error(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _cmd_register(args: argparse.Namespace) -> int:
    from training.registry import RegistryError, register

    try:
        version = register(args.run, alias=args.alias, model_name=args.model)
    except RegistryError as exc:
        return _registry_error(exc)
    print(f"registered run {args.run} as {args.model} v{version.version} @{args.alias}")
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from training.registry import RegistryError, promote

    try:
        decision = promote(args.model, metric=args.metric, min_improvement=args.min_improvement)
    except RegistryError as exc:
        return _registry_error(exc)
    print(decision.summary())
    for example in decision.examples:
        print(f"  violation: {example}")
    if not decision.promoted and not decision.unchanged:
        print(f"promotion refused: {decision.reason}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from training.compare import compare

    print(compare(args.configs, experiment=args.experiment))
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from training.pipeline import main_pipeline

    _, decision, _ = main_pipeline(
        args.data, args.config, args.model, offers_config_path=args.offers_config, planner_name=args.planner
    )
    refused = not decision.promoted and not decision.unchanged
    # A challenger that merely loses leaves a good champion in place; a diet violation never passes.
    if refused and (decision.champion_version is None or decision.violations or decision.short_lists):
        print(f"promotion refused: {decision.reason}", file=sys.stderr)
        return EXIT_REFUSED
    print("\nOpen the UI: mlflow ui --backend-store-uri sqlite:///mlflow.db")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from recsys.defaults import MODEL_NAME as model_name
    from training.config import DEFAULT_CONFIG

    p = sub.add_parser("tune", help="Optuna search over a config's tuning.space, tracked in MLflow")
    p.add_argument("--config", required=True, help="experiment YAML with a tuning section")
    p.add_argument("--trials", type=int, default=10, help="trials for THIS worker (default 10)")
    p.add_argument("--study", help="study name (default <config name>-tuning); workers sharing it cooperate")
    p.add_argument("--storage", help="Optuna storage URL (default: beside the MLflow store; OPTUNA_STORAGE)")
    p.add_argument("--seed", type=int, help="sampler seed (give each worker its own)")
    p.add_argument("--timeout", type=float, help="stop this worker after N seconds")
    p.add_argument("--no-holdout", action="store_true", help="skip refitting default/best on the test split")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("register", help="register a run's pyfunc model and set an alias")
    p.add_argument("--run", required=True, help="MLflow run id")
    p.add_argument("--alias", default="challenger", help="alias to set (default challenger)")
    p.add_argument("--model", default=model_name, help=f"registered model name (default {model_name})")
    p.set_defaults(func=_cmd_register)

    p = sub.add_parser("promote", help="move @champion to @challenger if it wins and passes diet probes")
    p.add_argument("--model", default=model_name, help=f"registered model name (default {model_name})")
    p.add_argument("--metric", help="metric to compare (default: the challenger config's promotion.metric)")
    p.add_argument("--min-improvement", type=float, help="required margin (default from the config, 0)")
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("compare", help="train several configs into one experiment and print a table")
    p.add_argument("--configs", nargs="+", required=True, help="experiment YAML files")
    p.add_argument("--experiment", default="grocery-recsys-compare", help="MLflow experiment for all runs")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("pipeline", help="prepare data, train the default config, register, promote")
    p.add_argument(
        "--data", default="data/cj", help="data directory (prepared from Complete Journey if missing)"
    )
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment config to train")
    p.add_argument("--model", default=model_name, help=f"registered model name (default {model_name})")
    p.add_argument(
        "--offers-config",
        dest="offers_config",
        default="experiments/configs/offers.yaml",
        help="planner config",
    )
    p.add_argument(
        "--planner",
        default="grocery-discount-planner",
        help="registered name of the discount plan (default grocery-discount-planner)",
    )
    p.set_defaults(func=_cmd_pipeline)
