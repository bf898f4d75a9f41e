"""Start-up from the MLflow registry alias, and a real server started by `recsys serve`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

from serving.config import Settings
from serving.runtime import load_runtime, parse_registry_uri
from tests.serving.conftest import API_KEY, AUTH


class _NativeDirModel(mlflow.pyfunc.PythonModel):
    """Stand-in for training's pyfunc: the native model dir and the items table as artifacts."""

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ARG002
        return model_input


def register_champion(tmp_path: Path, world: dict[str, Path]) -> str:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("serving-test")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_NativeDirModel(),
            artifacts={"model_dir": str(world["model"]), "items": str(world["model"] / "items.parquet")},
            registered_model_name="grocery-recommender",
        )
    client = mlflow.MlflowClient(tracking_uri=tracking)
    client.set_registered_model_alias("grocery-recommender", "champion", info.registered_model_version)
    return tracking


def test_loads_the_champion_from_the_registry(tmp_path, world):
    tracking = register_champion(tmp_path, world)
    rt = load_runtime(Settings(tracking_uri=tracking))  # no model dir, no data dir: registry only
    assert rt.version == "grocery-recommender/1"
    assert "champion" in rt.source and rt.model.name == "als"
    assert rt.n_items == 15 and rt.names[rt.item_index(["p_tofu"])[0]] == "Tofu"
    assert parse_registry_uri("models:/a/b@c") == ("a/b", "c")
    with pytest.raises(ValueError):
        parse_registry_uri("runs:/abc/model")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_recsys_serve_starts_a_server_with_metrics(tmp_path, world):
    port = _free_port()
    env = {
        **os.environ,
        "RECSYS_EVENTS_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "RECSYS_API_KEYS": API_KEY,
        "RECSYS_ACCESS_LOG": "false",
    }
    cmd = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model-dir", str(world["model"]), "--data-dir", str(world["data"])]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/v1/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        body = {"customer_id": "b1", "k": 3, "diet": ["vegan"]}
        assert httpx.post(f"{base}/v1/products", json=body).status_code == 401  # reads need a key
        r = httpx.post(f"{base}/v1/products", json=body, headers=AUTH)
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        bad = httpx.post(f"{base}/v1/products", json={"customer_id": "b1", "k": 0}, headers=AUTH)
        assert bad.status_code == 400
        histogram = 'bentoml_service_request_duration_seconds_bucket{endpoint="/v1/products"'
        for _ in range(40):  # the duration is recorded after the answer is sent: wait for it
            metrics = httpx.get(f"{base}/metrics").text
            if histogram in metrics:
                break
            time.sleep(0.25)
        version = r.json()["model_version"]
        assert f'recsys_model_info{{model="als",model_version="{version}"}} 1.0' in metrics
        assert histogram in metrics
        assert "recsys_products_batch_size_bucket" in metrics
        proc.send_signal(signal.SIGTERM)  # the `recsys serve` process only, as a supervisor would
        proc.wait(timeout=60)
        with pytest.raises(httpx.ConnectError):  # nothing is listening any more
            httpx.get(f"{base}/v1/health/live", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group only: whatever is left
        proc.wait(timeout=30)
        log.close()
