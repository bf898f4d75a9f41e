"""The registered pyfunc is self-contained: a fresh venv that installs ONLY the model's logged
requirements loads it with `mlflow.pyfunc.load_model` and answers, outside the project (no
`training` or `recsys` importable except the code bundled with the model).

Slow (a venv and a pip install of the requirements: minutes on a cold pip cache): -m slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.training.conftest import tiny_config
from training.jobs import run_training

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict([{"user_id": sys.argv[2], "k": 3, "diet": "vegan"}, {"user_id": "nobody", "k": 2}])
print(json.dumps([r.model_dump() for r in out]))
"""


def test_pyfunc_loads_in_a_fresh_venv_with_only_its_requirements(store, tiny_dir, tmp_path):
    run_id = run_training(tiny_config(tiny_dir, "als", {"factors": 8, "iterations": 3}))
    model_id = MlflowClient().get_run(run_id).data.tags["pyfunc_model_id"]
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(tmp_path / "m")))
    assert {"recsys", "training"} <= {p.name for p in (local / "code").iterdir()}
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("implicit==") for r in requirements)
    assert json.loads((local / "input_example.json").read_text())
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(local / "requirements.txt")]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "HOME": str(tmp_path)}
    cmd = [str(venv / "bin" / "python"), str(probe), str(local), "C0001"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(answers[0]["items"]) == 3 and len(answers[1]["items"]) == 2
    in_project = subprocess.run(
        [sys.executable, str(probe), str(local), "C0001"], capture_output=True, text=True, timeout=600
    )
    assert json.loads(in_project.stdout.strip().splitlines()[-1]) == answers  # same answers as here
