#!/usr/bin/env bash
# Build the sdist and the wheel of every distribution (the root's butterfly-kernel and
# each plugins/*/) into OUT, then `twine check --strict` them all.
#   scripts/build_dists.sh [OUT]      # default: dist/
# `python -m build` builds the wheel from the unpacked sdist, so a file missing from
# an sdist also breaks its wheel. Build environments come from uv (fast, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=$(realpath -m "${1:-dist}")
rm -rf "$out"
mkdir -p "$out"
export PATH="$(dirname "$PY"):$PATH"  # uv for --installer uv
for dir in . plugins/*/; do
  [[ -f $dir/pyproject.toml ]] || continue
  log=$(mktemp)
  if ! "$PY" -m build --installer uv --outdir "$out" "$dir" >"$log" 2>&1; then
    cat "$log" >&2
    echo "build failed: $dir" >&2
    exit 1
  fi
  rm -f "$log"
done
"$PY" -m twine check --strict "$out"/*
