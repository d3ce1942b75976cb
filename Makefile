# hoststream: `make run` and `make test` are the two set-up commands (docs/contract.md).
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test unit lint format bench stack-up stack-down clean

install:
	@bash deploy/local/install.sh

run: install
	$(BIN)/hoststream run $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	@bash deploy/local/install-bench.sh
	$(BIN)/python -m bench.run $(ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

stack-up: install
	$(BIN)/hoststream stack up

stack-down:
	$(BIN)/hoststream stack down

clean: stack-down
	rm -rf .hoststream/data .hoststream/logs .hoststream/run
