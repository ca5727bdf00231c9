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

.PHONY: setup system venv demo test bench clean

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

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: setup
	$(PY) bench/compose.py
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
