"""`recsys bento` + `bentoml build` + `bentoml serve TAG`: a bento that serves its baked champions on a
machine without the MLflow store, and never writes a database into its own source tree.

Builds from a copy of the sources into a temporary BENTOML_HOME (about 30 s: build, start, 3 calls).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.bento import export_bundle
from serving.auth import new_key

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory, world) -> Path:
    from recsys.data.io import read_tables
    from training.offers import fit_planner, plan_artifact
    from training.offers_config import load_offers_config, with_overrides

    tables = read_tables(world["data"], skip=("promotions",))
    config = with_overrides(load_offers_config(ROOT / "experiments/configs/offers.yaml"), {"budget": 5.0})
    out = tmp_path_factory.mktemp("plan") / "plan"
    plan_artifact(fit_planner(tables, config), tables, config).save(out)
    return out


def test_bento_builds_and_serves_its_baked_models(tmp_path, world, plan_dir):
    project = tmp_path / "project"
    for part in ("serving", "recsys"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "bentofile.yaml", project)
    meta = export_bundle(project / "bundle", world["model"], plan_dir)
    key, entry = new_key(["read"])
    auth = {"Authorization": f"Bearer {key}"}
    assert meta["model"] == str(world["model"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "MLFLOW_"))},
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "RECSYS_STATE_DIR": str(tmp_path / "state"),
        "RECSYS_API_KEYS": entry,  # reads need a key, in a bento as anywhere
        "PYTHONPATH": "",
    }
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    build = subprocess.run(
        [bentoml, "build", "."], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr[-3000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    serve = [bentoml, "serve", "grocery-recsys:latest", "--port", str(port), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        serve, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if httpx.get(f"{base}/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        r = httpx.post(f"{base}/v1/products", json={"customer_id": "b1", "k": 3}, headers=auth)
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        d = httpx.post(f"{base}/v1/discounts", json={"customer_id": "b1", "k": 3}, headers=auth)
        assert d.status_code == 200 and d.json()["model_version"].startswith("plan-")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    tags = (tmp_path / "bentoml" / "bentos" / "grocery-recsys").iterdir()
    bento = next(p for p in tags if p.name != "latest")
    assert (bento / "src" / "bundle" / "model" / "model.json").exists()
    assert not [p for p in bento.rglob("*.db*")], "the bento wrote a database into its source tree"
    assert (tmp_path / "state" / "events.db").exists()
