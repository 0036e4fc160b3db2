# mm-ext: `make demo` (set up + main demo) and `make test` (set up + test suite).
PY ?= .venv/bin/python
.PHONY: setup demo test bench data
setup:
	bash tools/setup.sh
demo: setup
	bash tools/demo.sh
test: setup
	$(PY) -m pytest -q tests
data: setup
	for d in $$($(PY) tools/make_data.py --list); do $(PY) tools/make_data.py $$d; done
bench: setup
	for b in tools/bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
