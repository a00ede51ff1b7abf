# Shared by scripts/quickstart.sh and scripts/test.sh (sourced, not run): find a Python
# >= 3.10, create .venv, and install threadline into it only when pyproject.toml changed.
# The caller sets REPO, VENV, SCRIPT_NAME and defines say().

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
# ensure_installed SPEC STAMP_NAME [MODULES_THAT_MUST_IMPORT]
ensure_installed() {
    local spec="$1" stamp="$VENV/.threadline-install-$2" want
    want="$spec $("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REPO/pyproject.toml")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$VENV/bin/python" -c "import ${3:-threadline}" 2>/dev/null; then
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
