# muvi — the two commands a newcomer runs: `make demo` and `make test`.
#
# `make setup` installs the Debian packages muvi needs (FluidSynth, a General MIDI SoundFont,
# Hydrogen's demo songs for the corpus) when they are missing, then creates .venv with the CPU
# build of torch and muvi installed editable. Override PYTHON or TORCH_SPEC if your machine
# needs another interpreter or torch build.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.muvi-installed
PYTEST_ARGS ?=
APT_PACKAGES := libfluidsynth3 fluid-soundfont-gm hydrogen-data

.PHONY: setup system-deps test demo bench clean-venv

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "muvi needs:$$missing (FluidSynth library, GM SoundFont, Hydrogen songs)"; exit 1; fi; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev,audio-prompt]'
	$(PY) -m pip install --quiet --no-deps basic-pitch==0.4.0
	touch $(STAMP)

setup: system-deps $(STAMP)

test: setup
	$(VENV)/bin/ruff check muvi engines export plugin_server benchmarks tests
	@# librosa compiles its numba kernels on first use (~20 s): once here, not inside a test
	$(PY) -c "import numpy as np; from muvi.metrics import onset_times; onset_times(np.random.default_rng(0).standard_normal(22050), 22050)"
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@if [ -f weights/muvi-compact/config.json ]; then \
	  $(VENV)/bin/muvi demo --out out/demo; \
	else \
	  echo "muvi demo: the pipeline works ('muvi demo --weights DIR' with any checkpoint), but the shipped"; \
	  echo "model is not trained yet (issue 6), so there are no weights in weights/muvi-compact to run it with."; \
	  exit 2; \
	fi

bench: setup
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/render.py --corpus

clean-venv:
	rm -rf $(VENV)
