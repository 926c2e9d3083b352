#!/usr/bin/env bash
# Schemathesis over neardup's REST API (issue 18): no 5xx, answers that match the schema.
#
#   scripts/api_fuzz.sh [SECONDS=240] [extra schemathesis options]
#
# Serves a sandbox catalog (the test photos and a byte copy, in a temporary folder; its trash
# there too, since the API can trash files) and runs every phase with every check for SECONDS.
# POST /api/index is left out: it indexes any folder named in the request, and "/" would walk
# the whole disk. Prints Schemathesis's report; exit status is Schemathesis's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-240}
shift || true
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/photos"
cp tests/data/*.jpg "$work/photos/"
cp tests/data/coffee.jpg "$work/photos/coffee-copy.jpg"
.venv/bin/neardup index "$work/photos" --db "$work/c.db" --embedder none -q
XDG_DATA_HOME="$work/xdg" .venv/bin/neardup serve --db "$work/c.db" --port 0 --token fuzz >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q " at http://" "$work/serve.out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/.* at \(http:[^?]*\).*/\1/p' "$work/serve.out" | head -1)
url=${url%/}
status=0
.venv/bin/schemathesis run "$url/openapi.json" -H "Authorization: Bearer fuzz" --checks all \
  --exclude-path /api/index --max-time "$seconds" --continue-on-failure --request-timeout 30 \
  --phases examples,coverage,fuzzing,stateful "$@" || status=$?
echo "server errors logged: $(grep -c '^Traceback' "$work/serve.err" || true)"
grep -E '^[A-Za-z.]*(Error|Exception):' "$work/serve.err" | sort | uniq -c || true
exit "$status"
