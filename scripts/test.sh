#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first if needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# The browser tests (tests/test_web_browser.py) drive Debian's Chromium: install it on a fresh
# machine (CI runs as root); elsewhere they skip and say why.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "[test] could not install chromium: the browser tests will skip" >&2
fi
exec .venv/bin/python -m pytest "$@"
