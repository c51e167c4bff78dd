# `make demo` and `make test` work on a fresh machine: they create .venv,
# install the CPU build of torch (never the multi-GB CUDA build) and the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
TORCH_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: setup demo test bench clean

$(BIN)/restore: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, so the package's plain "torch" requirement is already met.
	# No GPU: the CPU build (a wheel on this machine's disk if pip finds one,
	# else PyTorch's CPU index), never the multi-GB CUDA build.
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q $(TORCH); \
	else $(BIN)/pip install -q "$(TORCH)+cpu" 2>/dev/null \
	  || $(BIN)/pip install -q "$(TORCH)+cpu" --extra-index-url $(TORCH_INDEX); fi
	$(BIN)/pip install -q -e '.[test]'
	# The compiled sparse conv (restore_cli/ops/native.py), built now rather than on first use.
	$(BIN)/python -c 'from restore_cli.ops import native; native.main()'
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
