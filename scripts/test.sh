#!/usr/bin/env bash
# The test command: set up, lint, and run the whole test suite.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/test_cli.py -k show   # extra arguments go to pytest
#
#   bash scripts/test.sh tests/isolated/NAME          # one isolated suite, in its own venv
#
# Creates .venv (if missing), installs threadline with its dev extras, starts the local
# PostgreSQL cluster if it is installed but down, runs `ruff check src tests` and
# `mypy` and `python -m pytest -q`. Then each isolated suite, tests/isolated/<name>/, runs in
# its own cached venv .venvs/<name> with only the extras its `extras` file names: the
# integrations whose dependency pins conflict with the main environment's, so that one
# suite never downgrades another (extra arguments go to the main run only). Exits with
# pytest's exit code (5, "no tests collected", counts as a failure); if the tests pass but
# ruff or mypy found problems, exits with 1.
# Under CI (CI=true) the PostgreSQL tests must run: the fixture fails instead of skipping.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
SCRIPT_NAME=test.sh
cd "$REPO"

say() { printf '==> %s\n' "$*"; }

# shellcheck source=scripts/_setup.sh
source "$REPO/scripts/_setup.sh"

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

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing Chromium (apt-get) for the browser tests"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            >/tmp/threadline-chromium.log 2>&1 \
            || say "Chromium could not be installed (browser tests skip, or fail under CI)"
    else
        say "Chromium is missing: apt-get install -y chromium (browser tests skip, or fail under CI)"
    fi
}

# One isolated suite: its venv .venvs/NAME (made once, kept while pyproject.toml and the
# suite's extras stay the same), then pytest on the suite. run_isolated_suite NAME [ARGS]
run_isolated_suite() {
    local name="$1" extras main_venv="$VENV" status=0
    shift
    extras="$(tr -d ' \n' <"$REPO/tests/isolated/$name/extras")"
    VENV="$REPO/.venvs/$name"
    ensure_venv
    ensure_installed ".[$extras]" isolated "threadline, pytest"
    say "python -m pytest -q tests/isolated/$name $*   (in .venvs/$name: $extras)"
    THREADLINE_TEST_ISOLATED="$name" "$VENV/bin/python" -m pytest -q "tests/isolated/$name" "$@" \
        || status=$?
    VENV="$main_venv"
    return "$status"
}

if [[ "${1:-}" == tests/isolated/?* ]]; then
    suite="${1#tests/isolated/}"
    suite="${suite%%/*}"
    shift
    ensure_postgres
    run_isolated_suite "$suite" "$@"
    exit $?
fi

ensure_venv
ensure_installed ".[dev]" dev "threadline, pytest"
ensure_postgres
ensure_chromium

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

isolated_status=0
if [ "$#" -eq 0 ]; then
    for suite in "$REPO"/tests/isolated/*/; do
        [ -f "$suite/extras" ] || continue
        run_isolated_suite "$(basename "$suite")" || isolated_status=$?
    done
fi
if [ "$isolated_status" -ne 0 ]; then
    echo "${SCRIPT_NAME}: error: an isolated suite failed (see above)" >&2
    exit "$isolated_status"
fi
if [ "$ruff_status" -ne 0 ] || [ "$mypy_status" -ne 0 ]; then
    echo "${SCRIPT_NAME}: error: the tests passed but ruff or mypy found problems (see above)" >&2
    exit 1
fi
exit 0
