#!/usr/bin/env bash
# Build the sdist and the wheel of every distribution (the root's butterfly-kernel and
# each plugins/*/) into OUT, then `twine check --strict` them all.
#   scripts/build_dists.sh [OUT]      # default: dist/
# `python -m build` builds the wheel from the unpacked sdist, so a file missing from
# an sdist also breaks its wheel. Build environments come from uv (fast, cached).
# The distributions build side by side, JOBS at a time (default: one per core); a
# failed build prints its log and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-$(nproc)}
out=$(realpath -m "${1:-dist}")
rm -rf "$out"
mkdir -p "$out"
export PATH="$(dirname "$PY"):$PATH"  # uv for --installer uv
export PY out

# NOTE: each distribution writes only its own folder's egg-info and its own files in
# $out, so two builds at once do not meet.
build_one() {
  local dir=$1 log
  log=$(mktemp)
  if ! "$PY" -m build --installer uv --outdir "$out" "$dir" >"$log" 2>&1; then
    cat "$log" >&2
    echo "build failed: $dir" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
export -f build_one

dirs=()
for dir in . plugins/*/; do
  [[ -f $dir/pyproject.toml ]] && dirs+=("$dir")
done
printf '%s\0' "${dirs[@]}" | xargs -0 -n 1 -P "$JOBS" bash -c 'build_one "$1"' build_one
"$PY" -m twine check --strict "$out"/*
