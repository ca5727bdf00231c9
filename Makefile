# Two commands: `make demo` (set up, then compose from a bundled picture) and `make test`.
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
OUT ?= out
PYTEST_ARGS ?=
# The core install the project advertises: no extras (no torch, no chat clients, no redis client),
# plus the test tools (the dev extra). `make test-core` runs the suite there.
CORE_VENV ?= .venv-core
CORE_PY := $(CORE_VENV)/bin/python
CORE_STAMP := $(CORE_VENV)/.installed
EXTRA_MODULES := torch transformers huggingface_hub safetensors discord slack_bolt slack_sdk aiohttp redis

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
define run_pytest
@$(1) -m pytest $(PYTEST_ARGS); rc=$$?; \
if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc
endef

.PHONY: setup system venv core-venv demo test test-core bench clean

setup: system venv

system:
	@bash scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU build of torch first, so the neural extra's range installs nothing more.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[all,dev]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/aria compose examples/sunflowers.png --out $(OUT) --seed 7
	@echo "wrote $(OUT)/ (MIDI, audio, emotion chart, piano roll)"

test: setup
	$(call run_pytest,$(PY))

core-venv: $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml
	@test -x $(CORE_PY) || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_PY) -m pip install -q --upgrade pip
	$(CORE_PY) -m pip install -q -e '.[dev]'
	@touch $(CORE_STAMP)

# The whole suite in the core venv: it must collect there and pass, every module that needs an
# extra skipping itself. First the venv must really be core: no module of any extra importable.
# The whole suite, not a marked subset: what runs without extras takes about a minute on the
# 2-core CI machine (481 tests; 42 modules and 1 test skipped).
test-core: system core-venv
	@$(CORE_PY) -c 'import importlib.util as u, sys; found = [m for m in sys.argv[1:] if u.find_spec(m)]; \
	    sys.exit(f"$(CORE_VENV) is not a core install: it has {found}" if found else 0)' $(EXTRA_MODULES)
	$(call run_pytest,$(CORE_PY))

bench: setup
	$(PY) bench/compose.py
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) $(CORE_VENV) $(OUT) .pytest_cache
