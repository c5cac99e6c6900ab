# DenSNet — every target sets itself up on a fresh machine (Python 3.10+, no GPU needed).
VENV ?= .venv
PY := $(VENV)/bin/python
DENSNET := $(VENV)/bin/densnet
# The CPU build of PyTorch; installed first so that no step pulls the multi-GB CUDA build.
TORCH ?= torch==2.13.0
# MACE for the speed comparison lives apart: mace-torch pins e3nn 0.4.4, DenSNet needs e3nn 0.6.
MACE_VENV ?= .venv-mace
MACE ?= mace-torch==0.3.16

.PHONY: install test test-all lint demo demo-quick bench bench-md bench-mace-venv clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

## The test suite without the slow end-to-end cases (11.6 min measured on a fresh clone, 2 busy cores).
test: install
	$(PY) -m pytest -m "not slow" -p no:logging

## Everything, including the slow end-to-end cases.
test-all: install
	$(PY) -m pytest -p no:logging

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## The main job on the embedded example (10 min measured on a busy 2-core machine): label 24 rMD17 ethanol frames at
## PBE/def2-SVP, train a small model, run i-PI NVE MD through `densnet serve`, IR spectrum.
demo: install
	$(PY) examples/ethanol/pipeline.py examples/ethanol/out

## MD + spectrum with the model shipped in examples/ethanol/model (~3 min).
demo-quick: install
	$(PY) examples/ethanol/pipeline.py examples/ethanol/out-quick --model examples/ethanol/model/ethanol_100.pt

## The benchmark report (bench/results/benchmark.md, ~15 min): DenSNet vs PySCF vs MACE per
## energy+forces call, ms/step under i-PI, cost vs size 9-999 atoms, accuracy vs published MACE,
## and the MD validation summaries; MACE is timed when `make bench-mace-venv` has been run.
## Then the density-basis table (bench/results/density_basis.md).
bench: install
	$(PY) bench/benchmark.py
	$(PY) bench/density_basis.py --frames 0:3

## The long ethanol validations (~1 h on 2 cores): 100 ps of NVE and TRPMD with 8 beads through
## i-PI, with their reports (bench/results/md_ethanol.md, pimd_ethanol.md).
bench-md: install
	$(PY) bench/md_nve.py run
	$(PY) bench/md_nve.py report
	$(PY) bench/pimd_ethanol.py run
	$(PY) bench/pimd_ethanol.py report

## The MACE environment for bench/mace_timing.py (MACE energy+forces timings, ~1 min, 1.4 GB):
## the same CPU torch first, then mace-torch with torch held at that version.
bench-mace-venv: $(MACE_VENV)/.installed

$(MACE_VENV)/.installed:
	python3 -m venv $(MACE_VENV)
	$(MACE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MACE_VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(MACE_VENV)/bin/python -m pip install --quiet "$(MACE)" "$(TORCH)"
	$(MACE_VENV)/bin/python -c "import mace, e3nn, torch; print('mace', mace.__version__, \
		'e3nn', e3nn.__version__, 'torch', torch.__version__)"
	touch $@

clean:
	rm -rf $(VENV) examples/ethanol/out examples/ethanol/out-quick bench/out .pytest_cache \
		.ruff_cache .mypy_cache
