# Two commands: `make dev` runs the engine locally, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test install lint typecheck bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

install: $(STAMP)

## make dev: migrate, start Temporal dev server + localstripe + worker + API; Ctrl-C stops all
dev: $(STAMP)
	$(BIN)/lifecycle dev $(ARGS)

## make test: install and run the whole suite
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
# Installed here when this user can; otherwise those tests skip and say why (CI=true: fail).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "note: /usr/bin/chromium missing (apt-get install chromium); browser tests will skip"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

## make typecheck: mypy over lifecycle/, lifecycle_client/, workflows/, activities/ (pyproject's [tool.mypy])
typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/usage_ingest.py
	$(BIN)/python bench/api_outage.py
	$(BIN)/python bench/chaos_dunning.py
	$(BIN)/python bench/growth_cost.py
	$(BIN)/python bench/webhook_delivery.py
	$(BIN)/python bench/customers_list.py

clean:
	rm -rf $(VENV) .data
