# Two entry points (see README): `make main` and `make test`. Both create .venv and install first.
VENV := .venv
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
export OPENBLAS_NUM_THREADS := 1

.PHONY: main test lint install bento readme-walk

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

PORT ?= 3000

main: $(STAMP)
	$(VENV)/bin/recsys pipeline --data data/cj
	$(VENV)/bin/recsys serve --port $(PORT) --data-dir data/cj --env-file .env

# bake the champions into bundle/ and build the bento (bentoml serve grocery-recsys:latest)
bento: $(STAMP)
	$(VENV)/bin/recsys bento

# every README command on a clean clone (minutes; not part of `make test`)
readme-walk: $(STAMP)
	tests/readme_walk.sh $(abspath $(VENV))/bin/python

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
