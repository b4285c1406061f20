#!/usr/bin/env bash
# The main job on a fresh Debian machine with Python 3.11: a virtualenv with td-graph, then
# `td-graph demo` (the Graph simulator over TLS on loopback, SQLite state, NDJSON on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian splits venv support out of python3.
  if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
    echo "scripts/demo.sh: python3 -m venv needs Debian's python3-venv package (run as root or with sudo)" >&2; exit 1
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[demo]'
exec .venv/bin/td-graph demo "$@"
