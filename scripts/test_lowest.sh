#!/usr/bin/env bash
# Lower-bound check: every distribution installed (editable, every extra) into a fresh
# .venv-lowest with each *direct* dependency at the oldest release its pyproject.toml
# allows (uv's --resolution lowest-direct), then the quick part of the suite
# (`-m "not slow"`). A failure here means a lower bound in some pyproject.toml is
# too low: raise it, with a NOTE saying why. Extra pytest arguments are passed on.
#   scripts/test_lowest.sh [PYTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
PYTHON=${PYTHON:-.venv/bin/python}
venv=.venv-lowest

targets=()
while IFS= read -r line; do targets+=("$line"); done < <("$PYTHON" - <<'PY'
import tomllib
from pathlib import Path

folders = ["."] + sorted(str(p) for p in Path("plugins").glob("*") if (p / "pyproject.toml").is_file())
for folder in folders:
    extras = sorted(tomllib.loads(Path(folder, "pyproject.toml").read_text())["project"].get("optional-dependencies", {}))
    print("-e")
    print(folder + (f"[{','.join(extras)}]" if extras else ""))
PY
)

echo "==> $venv: every direct dependency at its lower bound"
"$UV" venv -q --clear --python "$PYTHON" "$venv"
# The test runner's own tools at their lower bounds too (requirements-dev.txt, "tests").
VIRTUAL_ENV=$venv "$UV" pip install -q --resolution lowest-direct "${targets[@]}" \
  "pytest>=8" "pytest-timeout>=2.2" "hypothesis>=6.100"
VIRTUAL_ENV=$venv "$UV" pip list --format freeze 2>/dev/null | tr '\n' ' ' | fold -s -w 110
echo
# NOTE: a 120 s timeout per test keeps a hang (an old release that does not work) short.
exec "$venv/bin/python" -m pytest -q -m "not slow" --timeout 120 "$@"
