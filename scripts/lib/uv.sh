# Sourced by scripts/test, scripts/optivex and scripts/uv: makes `uv` a command, on a machine that may
# have only Python 3.11+ (with the venv module or pip).
#
#   1. a uv on PATH that runs is used as it is;
#   2. otherwise the one this checkout bootstrapped earlier, .uv/bin/uv (PATH gets .uv/bin first);
#   3. otherwise uv is bootstrapped now, where PEP 668 allows it: into a venv, .uv/venv, made by
#      `python3 -m venv --without-pip`; python3's pip installs uv into that venv (`pip --python`,
#      pip 22.3+), or where python3 has no pip, ensurepip gives the venv a pip of its own first.
#
# Nothing is ever installed into python3's own environment (no --user, no --break-system-packages).
# .uv/ is ignored by git; delete it to bootstrap again. Errors are shown and say what to do.

OPTIVEX_UV_REQUIREMENT='uv==0.13.9' # the uv that wrote uv.lock (and knows UV_SYSTEM_CERTS, below)

_optivex_uv_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.uv"

_optivex_uv_error() {
    # The first argument says what failed; each further one is a line of what to do.
    printf 'error: cannot bootstrap uv: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do
        printf '  %s\n' "$line" >&2
    done
    printf '  or install uv yourself (https://docs.astral.sh/uv/getting-started/installation/) and put it on PATH\n' >&2
}

_optivex_apt_hint() {
    # How to install Debian's package $1: as root directly, else with sudo.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        printf 'install it (you are root, apt-get is here): apt-get install %s' "$1"
    else
        printf 'install it: sudo apt-get install %s (Debian/Ubuntu)' "$1"
    fi
}

_optivex_bootstrap_uv() {
    local dir=$_optivex_uv_dir
    local venv=$dir/venv python venv_package
    local -a pip
    if ! python=$(command -v python3); then
        _optivex_uv_error "no python3 on PATH" "install Python 3.11 or later (Debian/Ubuntu: python3 and python3-venv)"
        return 1
    fi
    venv_package=$("$python" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')
    echo "uv not found on PATH: installing it into $venv (a private venv; $python is left untouched)" >&2
    rm -rf "$venv" "$dir/bin" "$dir/requirement" # what an interrupted bootstrap left
    if ! "$python" -m venv --without-pip "$venv"; then
        _optivex_uv_error "'$python -m venv --without-pip $venv' failed (its output is above)" \
            "$python lacks a working venv module: $(_optivex_apt_hint "python3-venv (or $venv_package)")"
        return 1
    fi
    # python3's own pip, run inside the venv (pip 22.3+), else pip put into the venv by ensurepip.
    if "$python" -m pip --python "$venv/bin/python" --version >/dev/null 2>&1; then
        pip=("$python" -m pip --python "$venv/bin/python")
    elif "$venv/bin/python" -c 'import ensurepip' 2>/dev/null; then
        if ! "$venv/bin/python" -m ensurepip --default-pip >/dev/null; then
            _optivex_uv_error "'$venv/bin/python -m ensurepip' failed (its output is above)" \
                "$(_optivex_apt_hint "python3-venv (or $venv_package)")"
            return 1
        fi
        pip=("$venv/bin/python" -m pip)
    else
        _optivex_uv_error "$python has neither pip (22.3 or later) nor ensurepip to install uv with" \
            "$(_optivex_apt_hint "python3-venv (or $venv_package)")"
        return 1
    fi
    if ! "${pip[@]}" install --quiet --disable-pip-version-check "$OPTIVEX_UV_REQUIREMENT"; then
        _optivex_uv_error "'${pip[*]} install $OPTIVEX_UV_REQUIREMENT' failed (its output is above)" \
            "check that pip can reach its package index ('${pip[*]} config list' shows pip's settings)"
        return 1
    fi
    # Last, so that .uv/bin/uv exists only once uv is installed whole.
    if ! { mkdir -p "$dir/bin" && printf '%s\n' "$OPTIVEX_UV_REQUIREMENT" >"$dir/requirement" \
        && ln -s ../venv/bin/uv "$dir/bin/uv" && "$dir/bin/uv" --version >/dev/null; }; then
        _optivex_uv_error "uv was installed into $venv but $dir/bin/uv does not run (see above)"
        return 1
    fi
    echo "uv installed: $("$dir/bin/uv" --version) in $dir/bin (scripts/uv runs it)" >&2
}

_optivex_uv_ready() {
    # The bootstrapped uv is there, runs, and was installed for the current requirement.
    [ "$(cat "$_optivex_uv_dir/requirement" 2>/dev/null)" = "$OPTIVEX_UV_REQUIREMENT" ] \
        && "$_optivex_uv_dir/bin/uv" --version >/dev/null 2>&1
}

_optivex_bootstrap_uv_once() {
    # One bootstrap at a time per checkout (flock, where util-linux has it): a second script started
    # meanwhile waits, then finds uv ready.
    local lock status=0
    if ! mkdir -p "$_optivex_uv_dir"; then
        _optivex_uv_error "cannot create $_optivex_uv_dir"
        return 1
    fi
    if ! command -v flock >/dev/null 2>&1; then
        _optivex_bootstrap_uv
        return
    fi
    exec {lock}>"$_optivex_uv_dir/lock"
    flock "$lock"
    _optivex_uv_ready || _optivex_bootstrap_uv || status=$?
    exec {lock}>&-
    return "$status"
}

_optivex_ensure_uv() {
    local found
    if found=$(command -v uv); then
        if uv --version >/dev/null 2>&1; then
            return 0
        fi
        echo "warning: $found does not run (uv --version failed): using the project's own uv" >&2
    fi
    # Bootstrapped again when the requirement changed since, or what is there does not run.
    _optivex_uv_ready || _optivex_bootstrap_uv_once || return 1
    PATH="$_optivex_uv_dir/bin:$PATH"
    export PATH
    # The bootstrapped uv trusts the system's certificates, as Debian's pip that installed it does
    # (uv's own default is a bundled list): a proxy's CA added to the system's store works for both.
    if [ -z "${UV_SYSTEM_CERTS:-}${UV_NATIVE_TLS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export UV_SYSTEM_CERTS=1
    fi
}

_optivex_ensure_uv || return 1
