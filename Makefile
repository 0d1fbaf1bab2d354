# The two commands a new user needs: `make demo` and `make test`. Both set up what is missing.
SHELL := /bin/bash
VENV := .venv
MPP := $(VENV)/bin/mpp
SANDBOX ?= sandbox
DEMO_API ?= 127.0.0.1:8080

.PHONY: setup demo demo-down test lint unit faults bench bench-drivers mutate clean

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
	$(VENV)/bin/ruff check mpp tests bench scripts contrib
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict contrib/logic-example/mpp_logic_example.py
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -q --durations=25

unit: setup
	$(VENV)/bin/pytest -q -m "not integration"

# the fault matrix alone (tests/faults/scenarios.toml), with its table; make test runs it too
faults: setup
	$(VENV)/bin/pytest -q tests/faults

# mutation testing of the pure logic (mpp/logic) against its unit and property tests with
# mutmut ([tool.mutmut] in pyproject.toml); not part of `make test`: a fresh run takes tens
# of minutes on 2 cores (docs/reliability.md "Mutation testing" has the score, the time and
# the survivors). MUTATE_JOBS: mutants tested at once; `mutmut browse` shows each survivor.
MUTATE_JOBS ?= 1
mutate: setup
	rm -rf mutants
	MPP_HYPOTHESIS=mutate nice -n 10 $(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS)
	@$(VENV)/bin/mutmut results
	@$(VENV)/bin/mutmut export-cicd-stats >/dev/null
	@$(VENV)/bin/python scripts/mutation_score.py

bench: setup
	$(VENV)/bin/python bench/poll.py

# probe cost per driver (issue 12): PyMySQL as mpp runs it, against asyncmy and mysqlclient
bench-drivers:
	@./scripts/bootstrap.sh
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/poll.py --drivers --hang

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
