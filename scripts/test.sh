#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first if needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# The tests of catalogs on a server start a private PostgreSQL (tests/postgres.py) from
# Debian's binaries: install them when missing (as root), without the package's own
# always-on cluster. Without them those tests are skipped, saying why.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing PostgreSQL (Debian package; first run only)" >&2
    mkdir -p /etc/postgresql-common
    [ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 \
      || echo "[test] could not install PostgreSQL: its tests will be skipped" >&2
  else
    echo "[test] PostgreSQL is not installed and this is not root: its tests will be skipped" >&2
  fi
fi
# The browser tests (tests/test_web_browser.py) drive Debian's Chromium: install it on a fresh
# machine (CI runs as root); elsewhere they skip and say why.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "[test] could not install chromium: the browser tests will skip" >&2
fi
exec .venv/bin/python -m pytest "$@"
