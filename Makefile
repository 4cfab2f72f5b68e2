# harness: set up, run, test. `make demo` sets up and runs the main job on the embedded synthetic
# benchmark; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch by default. On a GPU machine install your CUDA build of torch into the
# venv first and run `make setup TORCH=` (empty: keep the torch that is there).
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup demo test smoke clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)),)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/harness ablate

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
