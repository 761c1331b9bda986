# Entry points for a fresh clone (see README.md):
#   make tour   install into .venv, register the kernel, run notebooks/tour.ipynb sandboxed
#   make lab    then: JupyterLab in the same environment, new notebooks on the sandboxed kernel
#   make test   install into .venv (with test extras) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTEST_ARGS ?=
# Where the tour runs and JupyterLab opens (the notebooks' workspace).
TOUR_DIR ?= build
# The tour's kernel encrypts its loopback ZMQ traffic with CurveZMQ keys jupyter_client
# provisions (the kernelspec declares support); ipykernel warns about plain TCP otherwise.
KERNEL_ENCRYPTION := --KernelManager.transport_encryption=auto
# Extra arguments for jupyter lab, e.g. LAB_ARGS="--no-browser --port=8899".
LAB_ARGS ?=

.PHONY: tour lab test install install-test bench compat lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m sandbox_kernel install --sys-prefix

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,browser,hub,grade,dev]'
	$(BIN)/python -m sandbox_kernel install --sys-prefix
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null

tour: install
	$(BIN)/pip install --quiet numpy pandas matplotlib nbconvert
	mkdir -p $(TOUR_DIR)
	cp notebooks/tour.ipynb $(TOUR_DIR)/tour.ipynb
	cd $(TOUR_DIR) && $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=sandbox-python $(KERNEL_ENCRYPTION) tour.ipynb
	$(BIN)/jupyter nbconvert --to markdown $(TOUR_DIR)/tour.ipynb --output-dir $(TOUR_DIR) >/dev/null 2>&1
	@echo "The tour ran in the sandbox: $(TOUR_DIR)/tour.ipynb (and $(TOUR_DIR)/tour.md)."
	@echo "Next: make lab (JupyterLab with the sandboxed kernel, opened on $(TOUR_DIR)/)."

lab: install
	$(BIN)/pip install --quiet jupyterlab numpy pandas matplotlib
	mkdir -p $(TOUR_DIR)
	test -e $(TOUR_DIR)/tour.ipynb || cp notebooks/tour.ipynb $(TOUR_DIR)/tour.ipynb
	$(BIN)/jupyter lab --ServerApp.root_dir=$(TOUR_DIR) \
		--MultiKernelManager.default_kernel_name=sandbox-python $(LAB_ARGS)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/run.py

# The harness fails on any difference from stock; the check passes when the differences
# are exactly those listed, with their reasons, in tests/conformance/corpus_differences.py.
compat: install-test
	mkdir -p $(TOUR_DIR)
	-$(BIN)/python ../shared/corpus/compat.py --kernel sandbox-python --reference python3 -j 2 \
		--json $(TOUR_DIR)/compat.json
	$(BIN)/python -m tests.conformance.corpus_differences $(TOUR_DIR)/compat.json

lint: install-test
	$(BIN)/ruff check sandbox_kernel tests bench examples notebooks
	$(BIN)/ruff format --check sandbox_kernel tests bench examples notebooks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
