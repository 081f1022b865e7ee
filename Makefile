# Two commands: `make dev` runs the engine locally, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test install lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## make dev: migrate, start Temporal dev server + localstripe + worker + API; Ctrl-C stops all
dev: $(STAMP)
	$(BIN)/lifecycle dev $(ARGS)

## make test: install and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/usage_ingest.py

clean:
	rm -rf $(VENV) .data
