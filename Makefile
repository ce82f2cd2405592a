# The two commands of the README: `make demo` and `make test`; CI (.ci/run) runs `make lint test`.
# Each (re)builds .venv from requirements.lock when the pins change, then runs.
# `make test-fast` is the inner loop: the suite without its Ray and end-to-end tests.
# `make image REGISTRY=...` builds the cluster image (docker/Dockerfile) tagged with the version.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' dlmia/__init__.py)
IMAGE = $(if $(REGISTRY),$(REGISTRY)/)dlmia:$(VERSION)

.PHONY: demo test test-fast lint image push clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/dlmia grid run demo --out out/demo

test: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/python -m pytest -q

test-fast: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/python -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check dlmia tune analysis tests bench tools examples
	$(VENV)/bin/mypy

image:
	docker build -f docker/Dockerfile --build-arg DLMIA_VERSION=$(VERSION) -t $(IMAGE) .

push: image
	docker push $(IMAGE)

clean:
	rm -rf $(VENV) out
