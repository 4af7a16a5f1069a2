# Two commands matter: `make run` (demo server on embedded defaults) and `make test`.
PY := .venv/bin/python

.PHONY: install run test bench clean

install:
	scripts/bootstrap.sh

run: install
	$(PY) -m kernel run --dev

test:
	scripts/bootstrap.sh --test
	$(PY) -m pytest

bench: install
	$(PY) bench/http/run.py

clean:
	rm -rf .venv data logs .pytest_cache
