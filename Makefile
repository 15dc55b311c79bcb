# make install: .venv with Python 3.11 and avplug editable under the pinned constraints (idempotent).
# make demo:    the main job on the built-in demo corpus.   make test: the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= output/demo

.PHONY: install demo test lint clean-demo

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "make install needs $(PYTHON) on PATH"; exit 1; }
	bash scripts/system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) tools/demo.py --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check avplug registry jobs tools tests benchmarks examples
