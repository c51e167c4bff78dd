# `make demo` and `make test` work on a fresh machine: they create .venv,
# install the CPU build of torch (never the multi-GB CUDA build) and the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU := torch==2.13.0
TORCH_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: setup demo test bench clean

$(BIN)/restore: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first, so the package's plain "torch" requirement is already met:
	# a wheel on this machine's disk if there is one, else PyTorch's CPU index.
	$(BIN)/pip install -q --no-index $(TORCH_CPU) 2>/dev/null \
	  || $(BIN)/pip install -q $(TORCH_CPU) --index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/restore

demo: setup
	$(BIN)/restore derain examples/rainy.png -o demo-out --save-mask
	@echo "wrote demo-out/rainy.png and its mask demo-out/rainy_mask.png"

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/sparse_ops.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
