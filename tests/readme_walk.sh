#!/usr/bin/env bash
# Walk the README's commands on a clean clone of this repository, in order, and fail on the first
# that fails. Minutes (Complete Journey, the pipeline, a ranker fit, compare, 10 tuning trials), so
# it is not part of `pytest`: run `make readme-walk` (or this script) by hand or in CI.
#
#   tests/readme_walk.sh [PYTHON]       PYTHON: an interpreter with the project's dependencies
#                                       (default .venv/bin/python of this checkout)
# The clone is imported through PYTHONPATH, so the walk never reinstalls into the given venv.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$SRC/.venv/bin/python}
WORK=$(mktemp -d /tmp/readme-walk.XXXXXX)
PORT=${PORT:-3391}
git clone -q "$SRC" "$WORK/repo"
cd "$WORK/repo"
export PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1
unset MLFLOW_TRACKING_URI RECSYS_EVENTS_URL RECSYS_API_KEYS OPTUNA_STORAGE RECSYS_DATA_DIR RECSYS_MODEL_DIR
recsys() { "$PY" -m cli "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "data: prepare, validate, schema"
recsys data prepare --source completejourney --out data/cj
recsys data validate data/cj --report problems.csv
recsys data schema | head -n 3

step "make main, part 1: the pipeline"
recsys pipeline --data data/cj

step "train, compare, tune"
recsys train --config experiments/configs/ranker.yaml --out models/ranker
recsys compare --configs experiments/configs/{popularity,buy_again,als,ranker}.yaml
recsys tune --config experiments/configs/als.yaml --trials 10
"$PY" -c "import pandas as pd; pd.read_parquet('data/cj/customers.parquet')['customer_id'].head(50).to_csv('users.csv', index=False)"
recsys recommend --model models/ranker --users users.csv --k 10 --diet gluten-free --out recs.csv
test "$(wc -l < recs.csv)" -gt 400
recsys customers --data data/cj --out lifecycle.csv

step "make main, part 2: serve (key generated into .env), the README's curl examples"
# not through the recsys() function: $! must be the process that becomes `bentoml serve` (exec)
"$PY" -m cli serve --port "$PORT" --data-dir data/cj --env-file .env > serve.log 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf "localhost:$PORT/v1/health/ready" > /dev/null && break; sleep 1; done
H='Content-Type: application/json'
K="Authorization: Bearer $(sed -n 's/^RECSYS_API_KEY=//p' .env)"
c() { curl -sf -XPOST "localhost:$PORT$1" -H "$H" -H "$K" -d "$2"; echo; }
c /v1/products '{"customer_id":"1013","k":5,"diet":["gluten-free"]}' | grep -q '"personalised":true'
c /v1/products '{"customer_id":"1013","mode":"discover","co2_weight":0.5}' | grep -q '"items":\[{'
c /v1/recipes '{"customer_id":"1013","k":3,"max_steps":6}' | grep -q '"recipes"'
c /v1/discounts '{"customer_id":"1013","k":3}' | grep -q '"discounts"'
c /v1/feedback '{"events":[{"customer_id":"1013","item_id":"995242","event_type":"purchase"}]}' | grep -q '"stored"'
curl -sf "localhost:$PORT/docs" | grep -q swagger-ui
curl -sf -H "$K" "localhost:$PORT/v1/customers/profile?customer_id=1013" | grep -q '"profiled"'
kill -TERM "$SERVER"; wait "$SERVER" || true   # SIGTERM stops the whole server: nothing listens
if curl -s "localhost:$PORT/v1/health/live" > /dev/null; then echo "still listening after SIGTERM"; exit 1; fi
printf '\nREADME walk passed in %s\n' "$WORK/repo"
