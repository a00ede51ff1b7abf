#!/usr/bin/env bash
# The test command: set up, lint, and run the whole test suite.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/test_cli.py -k show   # extra arguments go to pytest
#
# Creates .venv (if missing), installs threadline with its dev extras, starts the local
# PostgreSQL cluster if it is installed but down, runs `ruff check src tests` and
# `mypy` and `python -m pytest -q`. Exits with pytest's exit code (5, "no tests collected", counts as a
# failure); if the tests pass but ruff or mypy found problems, exits with 1.
# Under CI (CI=true) the PostgreSQL tests must run: the fixture fails instead of skipping.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
SCRIPT_NAME=test.sh
cd "$REPO"

say() { printf '==> %s\n' "$*"; }

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
        && "$VENV/bin/python" -c 'import threadline, pytest' 2>/dev/null; then
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

# Start the local PostgreSQL cluster when it is installed but not answering.
ensure_postgres() {
    command -v pg_isready >/dev/null 2>&1 || return 0
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ]; then
        say "PostgreSQL is not running at 127.0.0.1:5432 (its tests will skip, or fail under CI)"
        return 0
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    say "Starting PostgreSQL $version (cluster main)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    local _
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 1
    done
    say "PostgreSQL did not come up at 127.0.0.1:5432 within 30 s"
}

ensure_venv
ensure_installed ".[dev]" dev
ensure_postgres

say "ruff check src tests"
ruff_status=0
"$VENV/bin/python" -m ruff check src tests || ruff_status=$?

say "mypy (type check of src/threadline)"
mypy_status=0
"$VENV/bin/python" -m mypy || mypy_status=$?

say "python -m pytest -q $*"
pytest_status=0
"$VENV/bin/python" -m pytest -q "$@" || pytest_status=$?

if [ "$pytest_status" -eq 5 ]; then
    echo "${SCRIPT_NAME}: error: pytest collected no tests" >&2
    exit 5
fi
if [ "$pytest_status" -ne 0 ]; then
    exit "$pytest_status"
fi
if [ "$ruff_status" -ne 0 ] || [ "$mypy_status" -ne 0 ]; then
    echo "${SCRIPT_NAME}: error: the tests passed but ruff or mypy found problems (see above)" >&2
    exit 1
fi
exit 0
