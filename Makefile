# The two commands of the README: `make demo` and `make test`.
# Each (re)builds .venv from requirements.lock when the pins change, then runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/dlmia grid run grids/demo.yaml --out out/demo

test: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) out
