# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint-spec bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/newsagg serve --demo

# On both cores, a file per worker (the suite's servers are per worker). The in-process
# contract run goes beside them, in a process of its own: its schemathesis cases share one
# test id, which xdist would run once. Its report follows the suite's.
CONTRACT_RUN := tests/test_contract.py::test_operations_conform_to_the_contract
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(BIN)/pytest $(CONTRACT_RUN) > .contract-run.log 2>&1 & contract=$$!; \
	$(BIN)/pytest -n 2 --dist loadfile --deselect $(CONTRACT_RUN); suite=$$?; \
	wait $$contract; contract=$$?; cat .contract-run.log; rm -f .contract-run.log; \
	test $$suite -eq 0 && test $$contract -eq 0

# By hand, not in make test: needs Node.js, and npx downloads the two linters.
lint-spec:
	npx -y @stoplight/spectral-cli lint openapi/openapi.yaml
	npx -y @redocly/cli lint --extends=recommended openapi/openapi.yaml

# By hand, not in CI: needs wrk (Debian: apt-get install -y wrk); see bench/run.py.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache newsagg.sqlite3*
