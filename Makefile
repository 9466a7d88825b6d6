# muvi — the two commands a newcomer runs: `make demo` and `make test`.
#
# `make setup` creates .venv with the CPU build of torch and muvi installed editable.
# Override PYTHON or TORCH_SPEC if your machine needs another interpreter or torch build.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.muvi-installed
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@echo "muvi demo: the end-to-end demo (generate music for a bundled clip) arrives with the"
	@echo "generation pipeline; it is not built yet. What works today: 'muvi probe FILE' and the library."
	@exit 2

bench: setup
	$(PY) benchmarks/decode.py

clean-venv:
	rm -rf $(VENV)
