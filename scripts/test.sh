#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Python 3.11: the Debian packages the host
# tests start (syslog-ng with its Python module, rsyslog, Prometheus, PostgreSQL; systemd for systemd-analyze), a virtualenv with
# td-graph and its test extras, then pytest. Arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."

# rsyslog and syslog-ng-core conflict in Debian (both provide system-log-daemon), so they cannot
# be installed side by side: syslog-ng and Prometheus are installed, rsyslog's libraries too,
# and the rsyslog package itself is unpacked into .cache/rsyslog for the tests to start.
# postgresql: the server the state-backend and cluster tests start themselves (initdb + pg_ctl in
# a temporary folder, as the postgres user when run as root; tests/pg_support.py).
debs=(syslog-ng-core syslog-ng-mod-python python3-venv prometheus libestr0 libfastjson4 liblognorm5 systemd postgresql)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
as_root=()
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
    echo "scripts/test.sh: needs root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
  echo "scripts/test.sh: installing Debian packages: ${missing[*]}" >&2
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x .cache/rsyslog/usr/sbin/rsyslogd ]; then
  rm -rf .cache/rsyslog && mkdir -p .cache/rsyslog
  (cd .cache && { apt-get download rsyslog >/dev/null 2>&1 || { apt-get update -qq && apt-get download rsyslog; }; })
  dpkg -x .cache/rsyslog_*.deb .cache/rsyslog && rm -f .cache/rsyslog_*.deb
fi
# The packaged daemons must not run as services here: the tests start their own instances.
for svc in syslog-ng rsyslog prometheus postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" 2>/dev/null || true
  fi
done

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
