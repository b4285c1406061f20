#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Python 3.11: the Debian packages the host
# tests start (syslog-ng with its Python module, rsyslog, Prometheus), a virtualenv with
# td-graph and its test extras, then pytest. Arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(syslog-ng-core syslog-ng-mod-python rsyslog prometheus)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
    echo "scripts/test.sh: needs root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
  echo "scripts/test.sh: installing Debian packages: ${missing[*]}" >&2
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged daemons must not run as services here: the tests start their own instances.
for svc in syslog-ng rsyslog prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" 2>/dev/null || true
  fi
done

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
