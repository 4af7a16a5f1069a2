# Two commands matter: `make run` (demo server on embedded defaults) and `make test`
# (lint, then the whole suite, which also builds and installs the wheels: tests/test_wheels.py).
PY := .venv/bin/python
BIN := .venv/bin
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: install run lint deptry test test-lowest dist docs bench clean

install:
	scripts/bootstrap.sh

run: install
	$(PY) -m kernel run --dev

# ruff (lint + format), mypy and deptry (configs in pyproject.toml); also a pre-commit hook
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory deptry

# every import declared, nothing declared unused: each distribution against its own pyproject.toml
deptry:
	$(BIN)/deptry .
	@set -e; for dir in $(PLUGINS); do echo "deptry $$dir"; (cd $$dir && $(CURDIR)/$(BIN)/deptry .); done

test:
	scripts/bootstrap.sh --test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest

# A smoke subset of the suite with every dependency at its declared lower bound (.venv-lowest).
test-lowest: install
	scripts/test_lowest.sh

# Every sdist and wheel into dist/, checked with twine.
dist: install
	scripts/build_dists.sh dist

# The manual (docs/, mkdocs.yml) as a site in site/; the settings tables regenerated first.
docs: install
	$(PY) tests/docs_settings.py
	$(BIN)/mkdocs build --strict

bench: install
	$(PY) bench/http/run.py

clean:
	rm -rf .venv .venv-lowest dist site data logs .pytest_cache .mypy_cache
