# dd: `make sweep` runs the default sweep, `make test` runs the tests, `make test-fast` the quick
# ones, `make test-gpu` those that need a GPU, `make lint` the linters, `make bench` the
# benchmark; each sets up .venv first, installing the exact versions of requirements.lock
# (`make lock` refreshes it from pyproject.toml). Where an NVIDIA GPU answers (nvidia-smi -L)
# the CUDA build of the locked JAX is installed on top, elsewhere the CPU build stays;
# ACCEL=cpu or ACCEL=cuda forces one.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ACCEL ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
ifeq ($(filter $(ACCEL),cpu cuda),)
$(error ACCEL must be cpu or cuda (got $(ACCEL)))
endif
STAMP := $(VENV)/.installed-$(ACCEL)
LOCK := requirements.lock
BENCH_LOCK := requirements-bench.lock
SWEEP ?= sweeps/mnist1d_mlp.yaml
RESULTS ?= results
FAST := not slow and not ray and not browser
# Test processes (pytest-xdist; tests/conftest.py says what that asks of a test): two for a
# 2-core machine; on CUDA one, in-process, so that no two processes share the GPU's memory.
# worksteal: a process that runs out takes tests the other was handed and has not begun (with
# `load`, one process ran a slow module alone for the last 8 minutes).
TEST_WORKERS ?= $(if $(filter cuda,$(ACCEL)),0,2)
XDIST = -n $(TEST_WORKERS) --dist worksteal

.PHONY: install sweep test test-fast test-gpu lint browser lock bench clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
ifeq ($(ACCEL),cuda)
	$(BIN)/pip install --quiet "jax[cuda12]==$$(sed -n 's/^jax==//p' $(LOCK))"
endif
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

sweep: $(STAMP)
	$(BIN)/dd sweep $(SWEEP) --results $(RESULTS)

# Every test, the Chromium one included (`make browser` installs the browser where it can);
# --durations=25 lists the slowest tests, the map for making the suite faster.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q $(XDIST) --durations=25

# The edit-test loop: no test marked slow, ray or browser (see pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "$(FAST)"

# Tests marked gpu need a GPU: where nvidia-smi -L answers they run within test and test-fast,
# elsewhere tests/conftest.py deselects them. This runs just them, on purpose, on any machine.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian's chromium for the report's browser test; installed with apt-get when this is root,
# else the test skips and says why.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium; \
	else echo "chromium is missing and apt-get needs root: the browser test will skip"; fi

# Re-resolve the newest versions pyproject.toml allows into the lock files (the tests' and the
# benchmark's peers'); commit them with the code they were tested with.
COMPILE = $(BIN)/pip-compile --quiet --upgrade --strip-extras --no-emit-index-url \
	--no-emit-find-links
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(COMPILE) --extra test --extra lint --output-file $(LOCK) pyproject.toml
	$(COMPILE) --extra bench --constraint $(LOCK) --output-file $(BENCH_LOCK) pyproject.toml

# torch's +cpu build is the one this machine's wheel folder holds (see requirements-bench.lock).
$(VENV)/.bench-installed: $(STAMP) $(BENCH_LOCK)
	$(BIN)/pip install --quiet -r $(BENCH_LOCK)
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bucket_costs.py
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/workload.py 1 3
	$(BIN)/python benchmarks/cnn_workload.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/warm.py
	$(BIN)/python benchmarks/warm_instance.py
	$(BIN)/python benchmarks/warm_cut.py
	$(BIN)/python benchmarks/compile_profile.py
	$(BIN)/python benchmarks/plan_scale.py
	$(BIN)/python benchmarks/cpu_loops.py
	$(BIN)/python benchmarks/cost_table.py
	$(BIN)/python benchmarks/gpu.py
	$(BIN)/python benchmarks/conv_padding.py
	$(BIN)/python benchmarks/eta.py
	$(BIN)/python benchmarks/refine.py
	$(BIN)/python benchmarks/targets.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
