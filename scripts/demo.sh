#!/usr/bin/env bash
# The main job: set up .venv, index a collection, search it, list its duplicate groups.
#   scripts/demo.sh            # a sample collection built from images shipped in a pip package
#   scripts/demo.sh ~/Pictures # your own folder (catalog: ./neardup.db)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
ND=.venv/bin/neardup
if [ $# -gt 0 ]; then
  DB=neardup.db
  $ND index "$@" --db "$DB"
  query=$(find "$@" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | head -1)
  [ -n "$query" ] && { echo "== search: $query"; $ND search "$query" --db "$DB" -k 5; }
  echo "== duplicate groups"
  $ND duplicates --db "$DB"
  exit 0
fi
DB=sample/neardup.db
.venv/bin/python scripts/make_sample.py sample
$ND index sample/photos --db "$DB"
echo
echo "== search: every copy in sample/copies should find its original first"
$ND search sample/copies --db "$DB" -k 3
echo
echo "== duplicate groups"
$ND duplicates --db "$DB"
