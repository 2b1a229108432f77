# The two commands of the README. Both create .venv (if missing) and install ganlearn into it.
# torch==2.13.0 is pinned here only for the set-up on this project's CPU machines (a CPU wheel
# that lies on their disk); the package itself accepts any torch 2.x (see pyproject.toml).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test test-all lint docs results-docs examples bench sweep clean

$(BIN)/ganlearn: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/ganlearn

run: $(BIN)/ganlearn
	$(BIN)/ganlearn run --preset default --out runs/default-$$(date +%Y%m%d-%H%M%S)

# The fast tier (a few minutes on 2 CPU cores); test-all adds the slow integration tests
# (marker `slow`: real processes killed mid-run, the examples, the shape grid, Ray, DDP).
test: $(BIN)/ganlearn
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(BIN)/ganlearn
	$(BIN)/python -m pytest -q

# ruff (rules, layout and line length in pyproject.toml) on the package, tests, benchmarks and examples;
# mypy (basic mode, pyproject.toml) on the package
lint: $(BIN)/ganlearn
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site (mkdocs-material, strict: a warning is an error) into site/.
$(VENV)/.docs: $(BIN)/ganlearn
	$(BIN)/pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Regenerate the results pages, the README's headline tables and the config / CLI references from
# benchmarks/results/*/ and the code (the test suite fails when a committed page differs).
results-docs: $(BIN)/ganlearn
	$(BIN)/python docs/generate.py

# Each example at its --small size, its output and figures kept for the docs (benchmarks/results/examples/).
examples: $(BIN)/ganlearn
	$(BIN)/python benchmarks/run_examples.py

# make sweep EXP=width-sweep (or any of `ganlearn sweep --list`: sample-complexity, width-sweep-general,
# width-sweep-features, fsr-scaling, fsr-shapes, image-width, sparsity-claims); resumable
EXP ?= width-sweep
sweep: $(BIN)/ganlearn
	$(BIN)/ganlearn sweep $(EXP) --out runs/sweep-$(EXP)

# make bench [DEVICE=cuda]: the default run's wall time on DEVICE, replica batching (one-layer on
# the CPU; overparameterized and FSR on DEVICE, 1 thread), ganlearn vs plain eager loops (on CPU: the three
# problems; on a GPU: FSR, and the overparameterized problem at R = 256), achieved FLOP/s and bytes
# against the device's measured peaks, the image GANs' per-operation share, and peak memory; each writes benchmarks/results/<name>.json/.md.
# On a GPU machine without this venv: benchmarks/gpu_check.sh runs the GPU parts and the GPU tests.
DEVICE ?= cpu
ON_GPU = $(if $(filter cpu,$(DEVICE)),,1)
bench: $(BIN)/ganlearn
	$(BIN)/python benchmarks/bench_run.py --device $(DEVICE) --tag "$(if $(ON_GPU),_$(DEVICE),)"
	$(BIN)/python benchmarks/bench_replicas.py --problem onelayer
	$(BIN)/python benchmarks/bench_replicas.py --problem overparam --device $(DEVICE)
	$(BIN)/python benchmarks/bench_replicas_fsr.py --device $(DEVICE) --R 1 4 $(if $(ON_GPU),16,)
	$(BIN)/python benchmarks/bench_plain.py --device $(DEVICE) $(if $(ON_GPU),--R 256,)
	$(BIN)/python benchmarks/bench_roofline.py --device $(DEVICE)
	$(BIN)/python benchmarks/bench_image_overhead.py --device $(DEVICE)
	$(BIN)/python benchmarks/bench_memory.py

clean:
	rm -rf $(VENV) runs site
