"""`recsys serve`: start the BentoML service (a thin wrapper around `bentoml serve`).

The wrapper only turns flags into the environment the service reads (serving.config), so the
service behaves the same whether started by this command, by `bentoml serve` or from a bento.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recsys.defaults import PROJECT_DIR

SERVICE = "serving.service:RecsysService"


def serve_command(args: argparse.Namespace) -> list[str]:
    """The `bentoml serve` command line for the parsed flags."""
    bentoml = Path(sys.executable).with_name("bentoml")
    exe = [str(bentoml)] if bentoml.exists() else [sys.executable, "-m", "bentoml"]
    return [
        *exe,
        "serve",
        SERVICE,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--working-dir",
        str(PROJECT_DIR),
    ]


def serve_env(args: argparse.Namespace, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if getattr(args, "env_file", None):
        from cli.envfile import read_env_file

        env = {**read_env_file(Path(args.env_file)), **env}  # the shell's own settings win
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit/BLAS threads fight the server's own
    if args.model_dir:
        env["RECSYS_MODEL_DIR"] = str(Path(args.model_dir).resolve())
    if args.registry_uri:
        env.pop("RECSYS_MODEL_DIR", None)
        env["RECSYS_REGISTRY_URI"] = args.registry_uri
    if args.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if args.data_dir:
        env["RECSYS_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.offers_dir:
        env["RECSYS_OFFERS_DIR"] = str(Path(args.offers_dir).resolve())
    if args.events_url:
        env["RECSYS_EVENTS_URL"] = args.events_url
    if args.workers:
        env["RECSYS_WORKERS"] = str(args.workers)
    return env


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.model_dir and not (Path(args.model_dir) / "model.json").exists():
        raise FileNotFoundError(f"{args.model_dir} is not a model directory (no model.json)")
    if args.env_file and not os.environ.get("RECSYS_API_KEYS"):
        from cli.envfile import ensure_api_key

        key, made = ensure_api_key(Path(args.env_file))
        if key is None:
            print(f"API keys: the hashed entries in {args.env_file}", file=sys.stderr)
        else:
            print(
                f"API key, all scopes ({'generated into' if made else 'from'} {args.env_file}): {key}\n"
                f"  curl ... -H 'Authorization: Bearer {key}'   docs: http://127.0.0.1:{args.port}/docs",
                file=sys.stderr,
            )
    cmd = serve_command(args)
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    sys.stdout.flush()
    # exec, not a child process: the server IS this process, so SIGTERM/SIGINT from a supervisor,
    # `kill` or Ctrl-C reach BentoML itself and stop it with its workers (a wrapper left it running).
    os.execve(cmd[0], cmd, serve_env(args))
    return 0  # not reached


def _cmd_publish(args: argparse.Namespace) -> int:
    from recsys.defaults import DEFAULT_EVENTS_URL
    from serving.events import EventStore
    from serving.publish import publish
    from serving.state_cache import make_bus

    url = args.events_url or os.environ.get("RECSYS_EVENTS_URL") or DEFAULT_EVENTS_URL
    bus = make_bus(os.environ.get("RECSYS_CACHE_BUS_URL"), os.environ.get("RECSYS_CACHE_CHANNEL"))
    store = EventStore(url, bus=bus)
    try:
        done = publish(store, Path(args.data), recent_days=args.recent_days)
    finally:
        store.close()
    print(
        f"published {done.customers:,} customers ({done.with_profile:,} with a lifecycle profile; "
        f"{done.erased_left_out:,} erased left out) of data set {done.digest} into the event store"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    pub = sub.add_parser(
        "publish",
        help="put a data dir's customer state (consent, diet, recent purchases, lifecycle) into the "
        "event store, where serving reads it by key",
    )
    pub.add_argument("--data", required=True, help="prepared data directory")
    pub.add_argument(
        "--events-url", help="event store URL (default $RECSYS_EVENTS_URL or sqlite:///events.db)"
    )
    pub.add_argument("--recent-days", type=float, default=28.0, help="purchases counted as at home (recipes)")
    pub.set_defaults(func=_cmd_publish)
    p = sub.add_parser("serve", help="start the HTTP service (bentoml serve serving.service:RecsysService)")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="0.0.0.0")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model-dir", help="native model directory (default: the registry champion)")
    src.add_argument("--registry-uri", help="registry alias, default models:/grocery-recommender@champion")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument(
        "--data-dir",
        help="prepared data directory: the catalog and stock; its customers are published into the "
        "event store at start unless already there (recsys publish)",
    )
    p.add_argument(
        "--offers-dir",
        help="discount plan directory (recsys offers --plan-dir); default the registry's "
        "models:/grocery-discount-planner@champion",
    )
    p.add_argument("--events-url", help="event store URL (default sqlite:///events.db; postgresql://...)")
    p.add_argument("--workers", type=int, help="server worker processes (each holds the model)")
    p.add_argument(
        "--env-file",
        help="read settings (KEY=VALUE) from this file; generate an API key into it if it has none",
    )
    p.set_defaults(func=_cmd_serve)
