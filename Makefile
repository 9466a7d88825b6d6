# muvi — the two commands a newcomer runs: `make demo` and `make test`.
#
# `make setup` installs the Debian packages muvi needs (FluidSynth, a General MIDI SoundFont, MATE's photographs,
# Hydrogen's demo songs for the corpus) when they are missing, then creates .venv with the CPU
# build of torch and muvi installed editable, and the Node.js reference client's packages
# (clients/node, from its package-lock.json; Node.js itself comes from Debian when missing). Override PYTHON or TORCH_SPEC if your machine
# needs another interpreter or torch build.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.muvi-installed
PYTEST_ARGS ?=
APT_PACKAGES := libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont hydrogen-data mate-backgrounds
# only `make test` needs these: the Blender add-on's test runs it headless (make demo does not)
TEST_APT_PACKAGES := blender

NODE_STAMP := clients/node/node_modules/.muvi-installed

.PHONY: setup system-deps test-deps test demo bench protos clean-venv blender-addon

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing nodejs npm"; \
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

$(NODE_STAMP): clients/node/package-lock.json
	cd clients/node && npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

setup: system-deps $(STAMP) $(NODE_STAMP)

# regenerate the checked-in gRPC code after editing protos/ (a test fails when they drift)
protos: $(STAMP)
	$(PY) -m plugin_server.codegen

test-deps:
	@$(MAKE) --no-print-directory system-deps EXTRA_APT="$(TEST_APT_PACKAGES)"

test: setup test-deps
	$(VENV)/bin/ruff check muvi engines export plugin_server benchmarks tests scripts clients/blender
	@# librosa compiles its numba kernels on first use (~20 s): once here, not inside a test
	$(PY) -c "import numpy as np; from muvi.metrics import onset_times; onset_times(np.random.default_rng(0).standard_normal(22050), 22050)"
	MUVI_REQUIRE_BLENDER=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@# ONNX engines for the onnxruntime-cpu backend (once per weights, cached under ~/.cache/muvi)
	$(VENV)/bin/export-engines --weights weights/muvi --builder none
	$(VENV)/bin/muvi demo --out out/demo

bench: setup
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/render.py --corpus
	$(VENV)/bin/export-engines --weights weights/muvi --builder none
	$(PY) benchmarks/engines.py
	$(PY) benchmarks/e2e.py --no-preview
	$(PY) benchmarks/server.py

# the Blender add-on as an installable zip (clients/blender/dist/muvi_blender.zip)
blender-addon:
	$(PY) clients/blender/build.py

clean-venv:
	rm -rf $(VENV)
