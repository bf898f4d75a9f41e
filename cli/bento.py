"""`recsys bento`: bake the champions into `bundle/`, then `bentoml build` a self-contained bento.

The bento carries the serving code AND the models it serves: `bundle/model` (the native model
directory with its items table) and `bundle/plan` (the discount plan), copied from the registry
champions (or given directories). `bentoml serve grocery-recsys:latest` then needs no MLflow store;
promoting a new champion means `recsys bento` again (a new bento tag), the usual container release.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from recsys.atomic import staged_dir
from recsys.defaults import PROJECT_DIR

BUNDLE = PROJECT_DIR / "bundle"


def _copy_model(src: Path, dst: Path) -> None:
    from serving.runtime import _find_items_table, _find_model_dir

    model_dir = _find_model_dir(src)
    shutil.copytree(model_dir, dst)
    items = _find_items_table(src)
    if items is not None and not (dst / "items.parquet").exists():
        shutil.copy(items, dst / "items.parquet")
    if not (dst / "items.parquet").exists():
        raise ValueError(f"{src} holds no items table (items.parquet) beside the model")


def _download(uri: str, tracking_uri: str, dst: Path) -> tuple[Path, str]:
    """(local dir, 'name/version') of a registry alias, resolved once to a version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from serving.runtime import parse_registry_uri

    name, alias = parse_registry_uri(uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise ValueError(f"{uri} is not registered in {tracking_uri} (run 'make main' first)") from None
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst), tracking_uri=tracking_uri
    )
    return Path(local), f"{name}/{mv.version}"


def export_bundle(out: Path, model_dir: Path | None = None, offers_dir: Path | None = None) -> dict:
    """Write out/model, out/plan and out/bundle.json atomically (a new directory swapped in)."""
    from recsys.offers.artifact import META_FILE
    from serving.config import DEFAULT_OFFERS_URI, DEFAULT_REGISTRY_URI, Settings

    settings = Settings.from_env()
    meta: dict[str, str] = {}
    with staged_dir(out) as tmp:
        with tempfile.TemporaryDirectory() as dl:
            if model_dir is None:
                model_src, meta["model"] = _download(
                    DEFAULT_REGISTRY_URI, settings.tracking_uri, Path(dl) / "m"
                )
            else:
                model_src, meta["model"] = Path(model_dir), str(model_dir)
            _copy_model(model_src, tmp / "model")
            if offers_dir is None:
                plan_src, meta["plan"] = _download(DEFAULT_OFFERS_URI, settings.tracking_uri, Path(dl) / "p")
            else:
                plan_src, meta["plan"] = Path(offers_dir), str(offers_dir)
            found = sorted(plan_src.rglob(META_FILE))
            if not found:
                raise ValueError(f"{plan_src} holds no discount plan ({META_FILE})")
            shutil.copytree(found[0].parent, tmp / "plan")
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _cmd_bento(args: argparse.Namespace) -> int:
    meta = export_bundle(
        BUNDLE,
        Path(args.model_dir) if args.model_dir else None,
        Path(args.offers_dir) if args.offers_dir else None,
    )
    print(f"baked into {BUNDLE}: model {meta['model']}, discount plan {meta['plan']}")
    if args.no_build:
        return 0
    bentoml = Path(sys.executable).with_name("bentoml")
    cmd = [str(bentoml) if bentoml.exists() else "bentoml", "build", "."]  # BentoML: relative to cwd
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.call(cmd, cwd=PROJECT_DIR)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bento", help="bake the champions into bundle/ and run `bentoml build`")
    p.add_argument("--model-dir", help="native model directory (default: the registry champion)")
    p.add_argument("--offers-dir", help="discount plan directory (default: the planner champion)")
    p.add_argument("--no-build", action="store_true", help="only write bundle/, do not run bentoml build")
    p.set_defaults(func=_cmd_bento)
