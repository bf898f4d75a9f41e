"""Scale: wall time and peak memory of every batch step on synthetic national-size loyalty data.

    .venv/bin/python benchmarks/scale.py [--sizes 100000,300000,1000000] [--baseline /work/base]
        [--work /tmp/recsys-scale] [--products 30000] [--weeks 52] [--steps ...] [--max-gb 12]

For each size (customers; 30,000 products, 52 weeks by default) the steps run as the `recsys` command
line a retailer would run, each in its own process: `data prepare --source synthetic`, `train
--no-track` of buy_again, als and the default champion (grocery_ranker) on every week but the last
four, and `recommend` with buy-again and with the champion for every customer under a diet (vegan,
fail-closed). Peak RSS is the largest sum over the step's process tree, sampled every 0.2 s with
psutil; a step past `--max-gb` is stopped and reported as such (it cannot fit; the machine stays up).
`--baseline DIR` runs `--baseline-steps` with the code checked out in DIR (e.g. main before this
change) at `--baseline-sizes`, in the same run, so ratios are against a same-machine baseline.

Cells already in benchmarks/results/scale.csv with status ok are skipped, so a long run can be split
(`--sizes 100000` now, `--sizes 1000000` later); `--redo` measures them again. Data and models live
under --work (outside the repository) and are deleted after each size unless --keep.
Writes benchmarks/results/scale.{md,csv}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS = (
    "prepare",
    "train buy_again",
    "train als",
    "recommend buy_again",
    "train grocery_ranker",
    "recommend grocery_ranker",
)
#: Targets of issue 19 at 1M customers: (seconds, GB peak RSS).
TARGETS = {
    "prepare": (15 * 60, 8.0),
    "train buy_again": (20 * 60, 8.0),
    "train als": (20 * 60, 8.0),
    "train grocery_ranker": (20 * 60, 8.0),
    "recommend buy_again": (30 * 60, 8.0),
    "recommend grocery_ranker": (30 * 60, 8.0),
}
#: The issue's "today" figures at 100k customers x 20,000 products (seconds, GB).
ISSUE_TODAY = {
    "prepare": (69, 10.8),
    "train buy_again": (117, 10.3),
    "train als": (91, 9.2),
    "train grocery_ranker": (420, 13.1),
}
UNTIL = "2024-12-02"  # 52 weeks from 2024-01-01: the last four weeks are left out of training
COLUMNS = ["code", "customers", "step", "lines", "seconds", "cpu_seconds", "peak_gb", "status", "note"]


def measure(
    cmd: list[str], code: Path, log: Path, timeout: float, max_gb: float = float("inf")
) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak GB summed over the process tree, status) of one command;
    stopped (status says so) past `timeout` or once the tree holds more than `max_gb`, so a step
    that cannot fit does not take the machine down with it.

    CPU seconds (user + system of the reaped process tree) are what to compare on a shared machine:
    wall time there also counts the other jobs' turns on the cores."""
    env = {**os.environ, "PYTHONPATH": str(code), "OPENBLAS_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            over = "timeout" if time.perf_counter() - start > timeout else None
            if peak / 1e9 > max_gb:
                over = f"stopped over {max_gb:g} GB"
            if over:
                for p in [*root.children(recursive=True), root]:
                    p.kill()
                proc.wait()
                return time.perf_counter() - start, _cpu(before), peak / 1e9, over
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    return seconds, _cpu(before), peak / 1e9, status


def _cpu(before: resource.struct_rusage) -> float:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def step_command(step: str, n: int, data: Path, models: Path, args: argparse.Namespace) -> list[str]:
    cli = [sys.executable, "-m", "cli"]
    if step == "prepare":
        return [*cli, "data", "prepare", "--source", "synthetic", "--customers", str(n), "--products",
                str(args.products), "--weeks", str(args.weeks), "--seed", "0", "--out", str(data)]  # fmt: skip
    if step.startswith("train "):
        model = step.split()[1]
        return [*cli, "train", "--data", str(data), "--until", UNTIL, "--model", model, "--out",
                str(models / model), "--no-track"]  # fmt: skip
    model = step.split()[1]
    users = models / "users.csv"
    if not users.exists():
        pd.DataFrame({"user_id": pd.read_parquet(data / "customers.parquet")["customer_id"]}).to_csv(
            users, index=False
        )
    return [*cli, "recommend", "--model", str(models / model), "--users", str(users), "--k", "10",
            "--diet", "vegan", "--out", str(models / f"recs-{model}.csv")]  # fmt: skip


def load_rows() -> pd.DataFrame:
    path = RESULTS / "scale.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)


def run_size(
    code_name: str, code: Path, n: int, args: argparse.Namespace, rows: pd.DataFrame
) -> pd.DataFrame:
    work = Path(args.work) / f"{code_name}-{n}"
    data, models = work / "data", work / "models"
    models.mkdir(parents=True, exist_ok=True)
    lines = None
    steps = [s for s in STEPS if s in args.steps] if code_name == "new" else args.baseline_steps
    for step in steps:
        done = rows[(rows["code"] == code_name) & (rows["customers"] == n) & (rows["step"] == step)]
        if len(done) and (done["status"] == "ok").all() and not args.redo:
            print(f"{code_name} {n:,} {step}: done before, skipped")
            continue
        if step != "prepare" and not (data / "manifest.json").exists():
            # a resumed run needs the data again: prepare it without measuring
            measure(step_command("prepare", n, data, models, args), code, work / "prepare.log", args.timeout)
        if step.startswith("recommend") and not (models / step.split()[1] / "model.json").exists():
            status, seconds, cpu, peak = (
                "skipped: no trained model",
                float("nan"),
                float("nan"),
                float("nan"),
            )
        else:
            log = work / f"{step.replace(' ', '_')}.log"
            command = step_command(step, n, data, models, args)
            seconds, cpu, peak, status = measure(command, code, log, args.timeout, args.max_gb)
            if status != "ok":
                status += ": " + " ".join(log.read_text().strip().splitlines()[-1:])[:160]
        if (data / "manifest.json").exists():
            lines = json.loads((data / "manifest.json").read_text())["tables"]["interactions"]
        row = {"code": code_name, "customers": n, "step": step, "lines": lines, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
               "peak_gb": round(peak, 2), "status": status, "note": args.note}  # fmt: skip
        print(
            f"{code_name} {n:,} {step}: {seconds:.1f}s, cpu {cpu:.1f}s, {peak:.2f} GB, {status}", flush=True
        )
        keep = ~((rows["code"] == code_name) & (rows["customers"] == n) & (rows["step"] == step))
        rows = pd.concat([rows[keep], pd.DataFrame([row])], ignore_index=True)
        write(rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def write(rows: pd.DataFrame) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = rows.sort_values(["code", "customers", "step"], key=_order).reset_index(drop=True)
    rows.to_csv(RESULTS / "scale.csv", index=False)
    (RESULTS / "scale.md").write_text(report(rows))


def _order(col: pd.Series) -> pd.Series:
    return col.map({s: i for i, s in enumerate(STEPS)}) if col.name == "step" else col


def report(rows: pd.DataFrame) -> str:
    new = rows[rows["code"] == "new"]
    lines = [
        "# Scale: synthetic loyalty data, one 2-core 24 GB machine (shared with other jobs)",
        "",
        "`benchmarks/scale.py`: each step is the `recsys` command line in its own process; peak RSS is",
        "the process tree's, sampled every 0.2 s. 30,000 products, 52 weeks; `code` new = this branch,",
        "old = the baseline checkout in the same run. Targets (issue 19, at 1M customers): <= 8 GB per",
        "step, prepare <= 15 min, each train <= 20 min, recommend <= 30 min. Rows come from different",
        "runs (and machines of the same size): `note` says what shared the machine, and ratios between",
        "rows of different runs mix machine speeds.",
        "",
        "| code | customers | lines | step | wall s | CPU s | peak GB | status | note |",
        "|---|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for r in rows.itertuples():
        lines_txt = f"{int(r.lines):,}" if pd.notna(r.lines) else ""
        lines.append(
            f"| {r.code} | {int(r.customers):,} | {lines_txt} | {r.step} | {r.seconds:.1f} | {r.cpu_seconds:.1f} |"
            f" {r.peak_gb:.2f} | {r.status} | {r.note if pd.notna(r.note) else ''} |"
        )
    ok = new[new["status"] == "ok"]
    sizes = sorted(ok["customers"].unique())
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        lines += ["", f"Growth {lo:,} -> {hi:,} customers (new code):", ""]
        lines += ["| step | lines x | wall x | CPU x | peak GB x |", "|---|---:|---:|---:|---:|"]
        for step in STEPS:
            a, b = (
                ok[(ok["customers"] == lo) & (ok["step"] == step)],
                ok[(ok["customers"] == hi) & (ok["step"] == step)],
            )
            if len(a) and len(b):
                a, b = a.iloc[0], b.iloc[0]
                lines.append(
                    f"| {step} | {b.lines / a.lines:.2f} | {b.seconds / a.seconds:.2f} |"
                    f" {b.cpu_seconds / a.cpu_seconds:.2f} | {b.peak_gb / a.peak_gb:.2f} |"
                )
    at100 = rows[(rows["customers"] == 100_000) & (rows["status"] == "ok")]
    if len(at100):
        lines += [
            "",
            "At 100,000 customers: new vs old (same run) and vs the issue's figures (20,000 products):",
            "",
        ]
        lines += [
            "| step | new wall s | new CPU s | new GB | old wall s | old CPU s | old GB | issue s | issue GB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for step in STEPS:
            cell = {}
            for code in ("new", "old"):
                r = at100[(at100["code"] == code) & (at100["step"] == step)]
                cell[code] = (
                    (f"{r.iloc[0].seconds:.0f}", f"{r.iloc[0].cpu_seconds:.0f}", f"{r.iloc[0].peak_gb:.1f}")
                    if len(r)
                    else ("", "", "")
                )
            s, gb = ISSUE_TODAY.get(step, ("", ""))
            lines.append(f"| {step} | {' | '.join(cell['new'])} | {' | '.join(cell['old'])} | {s} | {gb} |")
    big = new[new["customers"] == new["customers"].max()] if len(new) else new
    if len(big):
        n = int(big["customers"].iloc[0])
        lines += ["", f"Targets at the largest size run ({n:,} customers):", ""]
        for step in STEPS:
            r = big[big["step"] == step]
            if not len(r):
                lines.append(f"- {step}: NOT MEASURED at this size")
                continue
            r = r.iloc[0]
            limit_s, limit_gb = TARGETS[step]
            verdict = (
                "met"
                if r.status == "ok" and r.seconds <= limit_s and r.peak_gb <= limit_gb
                else f"MISSED ({r.status}; {r.seconds:.0f}s vs {limit_s}s, {r.peak_gb:.1f} vs {limit_gb} GB)"
            )
            lines.append(f"- {step}: {verdict}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,300000,1000000", help="customers, comma separated")
    p.add_argument("--products", type=int, default=30_000)
    p.add_argument("--weeks", type=int, default=52)
    p.add_argument("--baseline", help="checkout of the code to compare with (e.g. /work/main)")
    p.add_argument("--baseline-sizes", default="100000", help="sizes the baseline runs at")
    p.add_argument("--work", default="/tmp/recsys-scale", help="data and models (outside the repository)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per step")
    p.add_argument("--max-gb", type=float, default=12.0, help="stop a step whose process tree holds more")
    p.add_argument("--steps", default=",".join(STEPS), help="steps to run (comma separated)")
    p.add_argument(
        "--baseline-steps",
        default="train buy_again,train als,recommend buy_again",
        help="steps the baseline runs (its data is prepared unmeasured)",
    )
    p.add_argument("--keep", action="store_true", help="keep data and models after each size")
    p.add_argument("--redo", action="store_true", help="measure cells already in scale.csv again")
    p.add_argument("--note", default="", help="free text stored with each row (e.g. machine load)")
    args = p.parse_args()
    args.steps = [s.strip() for s in args.steps.split(",")]
    args.baseline_steps = [s.strip() for s in args.baseline_steps.split(",")]
    unknown = sorted(set(args.steps + args.baseline_steps) - set(STEPS))
    if unknown:
        p.error(f"unknown step(s) {unknown}; choose from {', '.join(STEPS)}")
    rows = load_rows()
    runs = [("new", ROOT, int(n)) for n in args.sizes.split(",") if n]
    if args.baseline:
        runs = [("old", Path(args.baseline), int(n)) for n in args.baseline_sizes.split(",") if n] + runs
    for code_name, code, n in runs:
        rows = run_size(code_name, code, n, args, rows)
    print(report(rows))


if __name__ == "__main__":
    main()
