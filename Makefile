# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test install system-packages benchmark clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/forwarder demo --out demo-output/enriched.ndjson

# Debian packages the integration tests need (Redis, systemd's tools); Java and Maven
# (for the Elasticsearch test node) are on the machine.
system-packages:
	@tests/servers/install-system-packages

test: $(STAMP) system-packages
	$(BIN)/ruff check forwarder tests benchmarks
	$(BIN)/python -m pytest -q -rs

benchmark: $(STAMP)
	$(BIN)/python benchmarks/enrich_throughput.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
