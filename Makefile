# Two entry points for a fresh clone (see README.md):
#   make tour   install into .venv, register the kernel, run notebooks/tour.ipynb sandboxed
#   make test   install into .venv (with test extras) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: tour test install install-test bench compat lint

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
	mkdir -p build
	cp notebooks/tour.ipynb build/tour.ipynb
	cd build && ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=sandbox-python tour.ipynb
	$(BIN)/jupyter nbconvert --to markdown build/tour.ipynb --output-dir build >/dev/null 2>&1
	@echo "The tour ran in the sandbox: build/tour.ipynb (and build/tour.md)."

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/run.py

compat: install-test
	$(BIN)/python ../shared/corpus/compat.py --kernel sandbox-python --reference python3 -j 2

lint: install-test
	$(BIN)/ruff check sandbox_kernel tests bench examples notebooks
	$(BIN)/ruff format --check sandbox_kernel tests bench examples notebooks
	$(BIN)/mypy
