# The two commands a new user needs: `make demo` and `make test`. Both set up what is missing.
SHELL := /bin/bash
VENV := .venv
MPP := $(VENV)/bin/mpp
SANDBOX ?= sandbox
DEMO_API ?= 127.0.0.1:8080

.PHONY: setup demo demo-down test lint unit faults bench bench-drivers clean

setup:
	@./scripts/bootstrap.sh

demo: setup
	@$(MPP) sandbox up --dir $(SANDBOX) --api $(DEMO_API)
	@echo "mpp is starting; Ctrl-C stops it (the sandbox keeps running: make demo-down)."
	@echo "Live dashboard: http://$(DEMO_API)/ (if $(SANDBOX)/mpp.toml has the [api] section)"
	@echo "Try in another terminal: $(MPP) sandbox kill db1 --dir $(SANDBOX)"
	@$(MPP) --config $(SANDBOX)/mpp.toml run

demo-down: setup
	@$(MPP) sandbox down --dir $(SANDBOX)

lint: setup
	$(VENV)/bin/ruff check mpp tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -q

unit: setup
	$(VENV)/bin/pytest -q -m "not integration"

# the fault matrix alone (tests/faults/scenarios.toml), with its table; make test runs it too
faults: setup
	$(VENV)/bin/pytest -q tests/faults

bench: setup
	$(VENV)/bin/python bench/poll.py

# probe cost per driver (issue 12): PyMySQL as mpp runs it, against asyncmy and mysqlclient
bench-drivers:
	@MPP_EXTRA_PACKAGES="libmariadb-dev pkg-config" ./scripts/bootstrap.sh
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/poll.py --drivers --hang

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
