#!/usr/bin/env bash
# Set up a development environment: Debian packages the tests use (when root and
# missing), a virtualenv in .venv, and every distribution of the repo installed
# editable with all its extras. Safe to run again; fast when nothing changed.
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
  # pg_config and libpq headers: psycopg2 (butterfly-store[postgresql]) builds from source
  command -v pg_config >/dev/null || missing+=(libpq-dev)
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
# Reinstall when any distribution's metadata, its version (__version__ in the package's
# __init__.py) or the dev requirements changed.
sources=(pyproject.toml plugins/*/pyproject.toml kernel/__init__.py plugins/*/butterfly_*/__init__.py requirements-dev.txt)
if [[ ! -f $stamp ]] || [[ -n $(find "${sources[@]}" -newer "$stamp" 2>/dev/null) ]]; then
  echo "==> installing butterfly-kernel and plugins (editable, every extra)"
  # NOTE: pip 23's resolver cannot match a sibling's bounded requirement
  # (butterfly-store>=0.2,<0.3) to the editable install of the same command.
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
  skip_extras=()
  # psycopg2 compiles against libpq; without pg_config the PostgreSQL extra is left out
  # (the PostgreSQL tests then skip, or fail under CI=true).
  command -v pg_config >/dev/null || skip_extras+=(postgresql)
  # NOTE: psycopg2-binary and psycopg2 install the same `psycopg2` package; an old
  # .venv has the binary one, which must go before the source one comes in.
  if .venv/bin/python -m pip show -q psycopg2-binary 2>/dev/null; then
    .venv/bin/python -m pip uninstall -q -y psycopg2-binary
  fi
  mapfile -t targets < <(SKIP_EXTRAS="${skip_extras[*]}" .venv/bin/python - <<'EOF'
import os, tomllib
from pathlib import Path

skip = set(os.environ["SKIP_EXTRAS"].split())
folders = ["."] + sorted(str(p) for p in Path("plugins").glob("*") if (p / "pyproject.toml").is_file())
for folder in folders:
    project = tomllib.loads(Path(folder, "pyproject.toml").read_text())["project"]
    extras = sorted(set(project.get("optional-dependencies", {})) - skip)
    print("-e")
    print(folder + (f"[{','.join(extras)}]" if extras else ""))
EOF
  )
  .venv/bin/python -m pip install -q --disable-pip-version-check "${targets[@]}" -r requirements-dev.txt
  touch "$stamp"
fi
