# Every target sets itself up on a fresh machine: the venv, pinned packages, system packages.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck check-secrets clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m proxy serve --config config/proxy.yaml

lint: $(STAMP)
	$(PY) -m ruff check proxy tests
	$(PY) -m ruff format --check proxy tests

typecheck: $(STAMP)
	$(PY) -m mypy

check-secrets:
	@! git grep -nIE 'AIza[0-9A-Za-z_-]{35}' -- . || (echo "a Google API key is in the tree" && false)

test: $(STAMP) check-secrets lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
