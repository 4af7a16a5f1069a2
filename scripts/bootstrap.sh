#!/usr/bin/env bash
# Set up a development environment: Debian packages the tests use (when root and
# missing), a virtualenv in .venv, and every distribution of the repo installed
# editable. Safe to run again; fast when nothing is missing.
#   scripts/bootstrap.sh          # python packages only
#   scripts/bootstrap.sh --test   # also the Debian packages the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
want_system=0
[[ "${1:-}" == "--test" ]] && want_system=1

if [[ $want_system == 1 ]]; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nutcracker >/dev/null || missing+=(nutcracker)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  command -v wrk >/dev/null || missing+=(wrk)
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)   # tests/test_deploy_nginx.py
  # a CJK font, so 沧海 / 如期 render in the Chromium screenshots
  [[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || missing+=(fonts-wqy-microhei)
  if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
      echo "==> installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "==> missing Debian packages (run as root or install them): ${missing[*]}" >&2
    fi
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.butterfly-installed
sources=$(ls setup.cfg plugins/*/setup.cfg requirements-dev.txt 2>/dev/null)
if [[ ! -f $stamp ]] || [[ -n $(find $sources -newer "$stamp" 2>/dev/null) ]]; then
  echo "==> installing butterfly-kernel and plugins (editable)"
  args=(-e ".[test]")
  for dir in plugins/*/; do
    [[ -f "$dir/setup.cfg" ]] && args+=(-e "$dir")
  done
  .venv/bin/python -m pip install -q --disable-pip-version-check "${args[@]}" -r requirements-dev.txt
  touch "$stamp"
fi
