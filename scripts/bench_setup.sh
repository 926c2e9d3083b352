#!/usr/bin/env bash
# Install the match-quality benchmark's peers into the project venv (not neardup runtime deps).
#
#   usage: scripts/bench_setup.sh
#
# Idempotent: packages already importable are left alone. Creates .venv with neardup[cnn,dev]
# if it does not exist. Peers: imagehash (pHash, dHash), pdqhash (Meta's PDQ), matplotlib (charts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$ROOT/.venv/bin/python"
log() { echo "[bench_setup] $*" >&2; }

if [ ! -x "$PY" ]; then
  log "creating $ROOT/.venv with neardup[cnn,dev]"
  python3 -m venv "$ROOT/.venv"
  "$PY" -m pip install -q -e "$ROOT[cnn,dev]"
fi

# module name -> pip requirement
declare -A PEERS=(
  [imagehash]="imagehash>=4.3"
  [pdqhash]="pdqhash>=0.2"
  [matplotlib]="matplotlib>=3.8"
)
missing=()
for mod in "${!PEERS[@]}"; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=("${PEERS[$mod]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "pip install ${missing[*]}"
  "$PY" -m pip install -q "${missing[@]}"
fi
"$PY" - <<'PY'
import imagehash, matplotlib, pdqhash  # noqa: F401  (fails loudly if a peer is still missing)
print("[bench_setup] ok: imagehash", imagehash.__version__, "| matplotlib", matplotlib.__version__,
      "| pdqhash importable")
PY
