# The two commands of the quick start: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint install clean bench samples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/calor serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy src
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

# the official Qarnot Python samples, verbatim, against a calor server (scripts/samples.py);
# SAMPLES is a checkout of github.com/qarnot/qarnot-samples
samples: $(STAMP)
	@test -n "$(SAMPLES)" || { echo "usage: make samples SAMPLES=<checkout of qarnot-samples> [RUNTIMES='docker host']"; exit 2; }
	$(BIN)/python scripts/samples.py "$(SAMPLES)" --runtimes "$(or $(RUNTIMES),docker host)"

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) calor-data .pytest_cache .mypy_cache .ruff_cache
