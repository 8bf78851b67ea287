# Sourced by scripts/test and scripts/optivex: make `uv` available, installing
# it with pip when the machine has only Python 3.11+ and pip.
if ! command -v uv >/dev/null 2>&1; then
    if ! python3 -m uv --version >/dev/null 2>&1; then
        echo "uv not found: installing it with pip" >&2
        python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
    fi
    uv() { python3 -m uv "$@"; }
fi
