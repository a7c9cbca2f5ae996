# Every target sets itself up on a fresh machine: the venv, pinned packages, system packages.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps: `make run` needs the runtime packages only; tests, lint and docs add the rest.
RUN_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp


.PHONY: run docs test bench bench-quota lint typecheck check-secrets audit system-deps clean

# Debian packages the tests and the bench drive for real (rotel-agent needs libpython3.11;
# the browser tests drive Debian's chromium, never a downloaded one; systemd-analyze checks the unit).
SYSTEM_PACKAGES := nginx wrk libpython3.11 chromium redis-server systemd

# The JavaScript clients the tests drive (Vercel AI SDK, @google/genai, esbuild), pinned by the lock.
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

$(RUN_STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,docs]'
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: $(RUN_STAMP)
	$(PY) -m proxy serve --config config/proxy.yaml

# The user's site from docs/; --strict fails on a broken link or a page missing from the nav.
docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir build/site

lint: $(STAMP)
	$(PY) -m ruff check proxy tests bench
	$(PY) -m ruff format --check proxy tests bench

typecheck: $(STAMP)
	$(PY) -m mypy

check-secrets:
	@! git grep -nIE 'AIza[0-9A-Za-z_-]{35}' -- . || (echo "a Google API key is in the tree" && false)

# pip-audit against the pinned set: fails on a known vulnerability (says so when the
# vulnerability service cannot be reached; L104_AUDIT_STRICT=1 fails then too).
audit: $(STAMP)
	$(PY) .ci/audit.py

system-deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); }
	@# The machine image ships node and npm; Debian's are the fallback where they are missing.
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

test: $(STAMP) system-deps $(NODE_STAMP) check-secrets audit lint typecheck docs
	$(PY) -m pytest -q -p no:cacheprovider -n 2

bench: $(STAMP) system-deps
	$(PY) -m bench.run

# Goodput against real rolling quotas: three scenarios, learned and declared quotas (~12 min).
bench-quota: $(STAMP)
	$(PY) -m bench.quota

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(NODE_DIR)/node_modules
