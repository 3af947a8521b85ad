# The README's two commands: `make demo` and `make test`. Both create .venv and install
# rlnas with its dependencies first (torch pinned by constraints-ci.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rlnas-installed

.PHONY: demo test lint wheel-check bench clean

$(STAMP): pyproject.toml constraints-ci.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints-ci.txt -e '.[test,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlnas demo

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (settings in pyproject.toml): pycodestyle, pyflakes, import order, complexity <= 18
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the built wheel (not the editable clone) installed into a fresh venv, run from outside the tree
wheel-check: $(STAMP)
	.ci/wheel_check.sh $(PY)

bench: $(STAMP)
	$(PY) benchmarks/bench_nb201.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
