#!/usr/bin/env bash
# One command for a newcomer: set up, log the traces of an example agent, show them.
#
#   bash scripts/quickstart.sh
#
# Creates .venv (if missing) and installs threadline into it, runs examples/quickstart.py
# in .quickstart/ (a fresh SQLite store each time), lists the traces with the `threadline`
# CLI and shows the one whose tool call failed, then serves the web UI on that store at
# http://127.0.0.1:5000 (Ctrl-C stops it; --no-server or CI=true skips it). Safe to run again.
# Needs Python >= 3.10 and pip; set PYTHON=/path/to/python to choose the interpreter.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
WORK="$REPO/.quickstart"
SCRIPT_NAME=quickstart
cd "$REPO"

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }

# shellcheck source=scripts/_setup.sh
source "$REPO/scripts/_setup.sh"

ensure_venv
ensure_installed "." quickstart

say "Running examples/quickstart.py in .quickstart/ (fresh store: .quickstart/threadline.db)"
mkdir -p "$WORK"
rm -f "$WORK"/threadline.db "$WORK"/threadline.db-wal "$WORK"/threadline.db-shm
export THREADLINE_TRACKING_URI="sqlite:///$WORK/threadline.db"
(cd "$WORK" && "$VENV/bin/python" "$REPO/examples/quickstart.py")

THREADLINE="$VENV/bin/threadline"
experiment_id="$("$THREADLINE" experiments list --output json \
    | "$VENV/bin/python" -c 'import json, sys; print(next(e["experiment_id"] for e in json.load(sys.stdin) if e["name"] == "quickstart"))')"

say "threadline traces list --experiment-id $experiment_id"
"$THREADLINE" traces list --experiment-id "$experiment_id"

failed_filter="span.type = 'TOOL' AND span.status = 'ERROR'"
trace_id="$("$THREADLINE" traces list --experiment-id "$experiment_id" --filter "$failed_filter" \
    --max-results 1 --output json \
    | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[0]["trace_id"])')"

say "threadline traces show $trace_id   (the trace whose tool call failed)"
"$THREADLINE" traces show "$trace_id"

cat <<MSG

Done. The traces are in $WORK/threadline.db. Explore them with:
  source .venv/bin/activate
  export THREADLINE_TRACKING_URI=sqlite:///$WORK/threadline.db
  threadline traces list --filter "span.status = 'ERROR'"
  threadline traces show $trace_id --output json
MSG

# The web UI on the quickstart's store. Skipped with --no-server, THREADLINE_QUICKSTART_SERVER=0
# or CI=true (so automation never blocks on a running server).
if [ "${1:-}" = "--no-server" ] || [ "${THREADLINE_QUICKSTART_SERVER:-1}" = "0" ] \
    || [ "${CI:-}" = "true" ]; then
    exit 0
fi
ensure_installed ".[server]" quickstart-server fastapi
PORT="${THREADLINE_QUICKSTART_PORT:-5000}"
say "Web UI: open http://127.0.0.1:$PORT/#/experiments/$experiment_id  (the failed trace: http://127.0.0.1:$PORT/#/traces/$trace_id)  Ctrl-C stops it"
exec "$THREADLINE" server --host 127.0.0.1 --port "$PORT" --backend-store-uri "sqlite:///$WORK/threadline.db"
