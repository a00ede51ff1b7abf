#!/usr/bin/env bash
# One command for a newcomer: set up, log the traces of an example agent, show them.
#
#   bash scripts/quickstart.sh
#
# Creates .venv (if missing) and installs threadline into it, runs examples/quickstart.py
# in .quickstart/ (a fresh SQLite store each time), then lists the traces with the
# `threadline` CLI and shows the one whose tool call failed. Safe to run again.
# Needs Python >= 3.10 and pip; set PYTHON=/path/to/python to choose the interpreter.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
WORK="$REPO/.quickstart"
SCRIPT_NAME=quickstart
cd "$REPO"

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "${SCRIPT_NAME}: error: need Python >= 3.10 (set PYTHON=/path/to/python3.x)" >&2
    return 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ]; then
        if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            echo "${SCRIPT_NAME}: error: $VENV is broken or older than Python 3.10;" \
                "remove it (rm -rf .venv) and run again" >&2
            return 1
        fi
        return 0
    fi
    local python
    python="$(find_python)"
    say "Creating $VENV with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
        # Debian/Ubuntu without python3-venv: fall back to virtualenv, installed with pip.
        rm -rf "$VENV"
        "$python" -m pip install --quiet --user virtualenv
        "$python" -m virtualenv --quiet "$VENV"
    fi
}

# Install only when pyproject.toml (or the extras) changed since the last install.
ensure_installed() {
    local spec="$1" stamp="$VENV/.threadline-install-$2" want
    want="$spec $("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REPO/pyproject.toml")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$VENV/bin/python" -c 'import threadline' 2>/dev/null; then
        return 0
    fi
    say "Installing threadline ($spec) into $VENV"
    local log="$VENV/pip-install.log"
    # pip >= 21.3 for editable installs of a pyproject.toml project (PEP 660).
    if ! { "$VENV/bin/python" -m pip install 'pip>=21.3' \
        && "$VENV/bin/python" -m pip install -e "$spec"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "${SCRIPT_NAME}: error: pip install -e '$spec' failed (log above, also in $log)" >&2
        return 1
    fi
    echo "$want" >"$stamp"
}

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
