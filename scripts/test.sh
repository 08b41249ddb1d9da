#!/usr/bin/env bash
# THE test command: runs every test of the workspace on a fresh Debian machine with Rust
# and Python 3.11, as root. It installs what is missing (Debian packages, a real uWSGI
# 2.0.31 built from source into target/venv as the differential oracle), then builds and
# runs `cargo test --workspace --no-fail-fast`. Idempotent: a second run installs nothing.
#
# Environment it exports for the tests:
#   IMPERIUM_UWSGI  the real uWSGI binary (target/venv/bin/uwsgi)
#   IMPERIUM_VENV   the Python virtualenv holding it (target/venv)
set -euo pipefail

# Debian packages the tests need. Add new peers (nginx, systemd, postgresql, ...) here.
APT_PACKAGES=(
    build-essential   # cc for uWSGI's build and for crates with C parts
    pkg-config
    libjansson-dev    # uWSGI's JSON config loader (--json); without it uWSGI has no --json
    libpcre2-dev
    libssl-dev
    libxml2-dev       # uWSGI's XML config loader (libxml2 flavour, the one the corpus pins)
    libcap-dev
    curl
    # isolation (issue 5): setpriv and nsenter, useradd, mount and hostname for the tests
    util-linux
    passwd
    mount
    hostname
    # ---- vassal helper (issue 7): real clients of the vassal ----
    nginx             # uwsgi_pass over TCP and UNIX sockets (tests/vassal_nginx.rs, python_frameworks.rs)
    # ---- end vassal helper ----
)
UWSGI_VERSION=2.0.31

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive

banner() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    printf '\nscripts/test.sh: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ---------------------------------------------------------------------------------------
banner "system packages"
VENV=$ROOT/target/venv
UWSGI=$VENV/bin/uwsgi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    # pip builds uWSGI's Python plugin: it needs Python.h.
    if command -v python3 >/dev/null 2>&1 &&
        ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
        missing+=(python3-dev)
    fi
    # `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
    if [ ! -x "$VENV/bin/python" ] && command -v python3 >/dev/null 2>&1; then
        probe=$(mktemp -d)
        python3 -m venv "$probe/v" >/dev/null 2>&1 || missing+=(python3-venv)
        rm -rf "$probe"
    fi
else
    echo "dpkg-query not found: not a Debian system, assuming the build dependencies are present"
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "all present"
fi

# ---------------------------------------------------------------------------------------
banner "Rust toolchain"
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
cargo --version

# ---------------------------------------------------------------------------------------
banner "uWSGI $UWSGI_VERSION (the oracle) in target/venv"
# Good = the right version, with the JSON loader and the libxml2 XML loader.
uwsgi_ok() {
    [ -x "$UWSGI" ] || return 1
    local version help libs
    version=$("$UWSGI" --version 2>/dev/null || true)
    [ "$version" = "$UWSGI_VERSION" ] || return 1
    help=$("$UWSGI" --help 2>/dev/null || true)
    grep -q -- '--json' <<<"$help" || return 1
    libs=$(ldd "$UWSGI" 2>/dev/null || true)
    grep -q libxml2 <<<"$libs" || return 1
}
uwsgi_why() {
    if [ ! -x "$UWSGI" ]; then echo "missing"; return; fi
    local version help libs json=no xml=no
    version=$("$UWSGI" --version 2>/dev/null || true)
    help=$("$UWSGI" --help 2>/dev/null || true)
    libs=$(ldd "$UWSGI" 2>/dev/null || true)
    grep -q -- '--json' <<<"$help" && json=yes
    grep -q libxml2 <<<"$libs" && xml=yes
    echo "version '$version', JSON loader: $json, libxml2: $xml"
}
if uwsgi_ok; then
    echo "present: $UWSGI"
else
    if [ ! -x "$VENV/bin/python" ]; then
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    echo "building uwsgi==$UWSGI_VERSION from source ($(uwsgi_why))"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-binary uwsgi "uwsgi==$UWSGI_VERSION"
    if ! uwsgi_ok; then
        # A wheel cached before libjansson-dev/libxml2-dev were installed lacks the loaders.
        echo "rebuilding without pip's cache ($(uwsgi_why))"
        "$VENV/bin/python" -m pip install --disable-pip-version-check --no-binary uwsgi \
            --force-reinstall --no-cache-dir "uwsgi==$UWSGI_VERSION"
    fi
    uwsgi_ok || die "target/venv/bin/uwsgi is still not uWSGI $UWSGI_VERSION with JSON and libxml2 support ($(uwsgi_why)); check that libjansson-dev and libxml2-dev are installed"
    echo "built: $UWSGI"
fi
# ---- vassal helper (issue 7): uwsgitop reads the stats server (tests/vassal_nginx.rs) ----
if [ ! -x "$VENV/bin/uwsgitop" ]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check uwsgitop
fi
# ---- end vassal helper ----
export IMPERIUM_UWSGI=$UWSGI
export IMPERIUM_VENV=$VENV
echo "IMPERIUM_UWSGI=$IMPERIUM_UWSGI"
echo "IMPERIUM_VENV=$IMPERIUM_VENV"

# ---------------------------------------------------------------------------------------
# isolation (issue 5): unprivileged test tenants, and the FreeBSD build of the crates that
# build there: isolation (jail parameters), monitors (kqueue dir/glob monitors, helper
# pipes), config and systemd. The vassal and the Emperor are Linux-only for now (see
# docs/isolation.md, "FreeBSD").
banner "isolation: test tenants, FreeBSD target"
for u in imp-tenant1 imp-tenant2 imp-emperor; do
    id -u "$u" >/dev/null 2>&1 ||
        as_root useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$u"
done
getent group imp-shared >/dev/null 2>&1 || as_root groupadd --system imp-shared
id -nG imp-tenant1 | grep -qw imp-shared || as_root usermod -a -G imp-shared imp-tenant1
command -v rustup >/dev/null 2>&1 || die "rustup not found: needed for the x86_64-unknown-freebsd target"
rustup target list --installed | grep -qx x86_64-unknown-freebsd || rustup target add x86_64-unknown-freebsd
cargo check --target x86_64-unknown-freebsd -p imperium-namespaces
cargo check --target x86_64-unknown-freebsd -p imperium-monitors -p imperium-config -p imperium-systemd
# ---- end of isolation block -------------------------------------------------------------
# [monitors] BEGIN: peers of the pg/amqp/zmq/mongodb monitor tests (tests/monitor_*.rs).
# PostgreSQL on 127.0.0.1:5432 with trust auth, RabbitMQ on 127.0.0.1:5672 (guest/guest,
# rabbitmqctl for per-test vhosts and users), `ip netns` for the fleet test, and pika,
# pyzmq, mockupdb (+ pymongo) in target/venv. Installs and starts only what is missing.
banner "monitor peers: PostgreSQL, RabbitMQ, pika, pyzmq, mockupdb"
MON_APT=(postgresql postgresql-client rabbitmq-server iproute2)
mon_missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${MON_APT[@]}"; do
        is_installed "$p" || mon_missing+=("$p")
    done
fi
if [ "${#mon_missing[@]}" -gt 0 ]; then
    echo "installing: ${mon_missing[*]}"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "${mon_missing[@]}"
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }
wait_port() {
    local i
    for i in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
    return 1
}
if ! port_open 5432; then
    echo "starting PostgreSQL"
    as_root service postgresql start || as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    wait_port 5432 || die "PostgreSQL does not listen on 127.0.0.1:5432"
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null 2>&1; then
    # The tests connect as postgres over TCP without a password (trust), as on the CI machines.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
    echo "enabling trust auth for 127.0.0.1 in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root service postgresql reload || as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main reload || true
    sleep 1
    psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null || die "cannot log into PostgreSQL as postgres on 127.0.0.1"
fi
if ! port_open 5672; then
    echo "starting RabbitMQ"
    as_root service rabbitmq-server start || as_root rabbitmq-server -detached || true
    wait_port 5672 || die "RabbitMQ does not listen on 127.0.0.1:5672"
fi
rabbitmqctl list_vhosts >/dev/null 2>&1 || die "rabbitmqctl cannot reach RabbitMQ"
if ! "$VENV/bin/python" -c 'import pika, zmq, mockupdb, pymongo' >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check pika pyzmq mockupdb pymongo
fi
echo "PostgreSQL, RabbitMQ, pika, pyzmq, mockupdb: ready"
# [monitors] END

# ---- python (issue 3): the CPython plugin and the Flask/Django venv
banner "CPython plugin and the Flask/Django venv (target/pyvenv)"
PYVENV=$ROOT/target/pyvenv
if ! "$PYVENV/bin/python" -c 'import flask, django, paste.deploy' >/dev/null 2>&1; then
    [ -x "$PYVENV/bin/python" ] || python3 -m venv "$PYVENV"
    "$PYVENV/bin/python" -m pip install --disable-pip-version-check -q flask django PasteDeploy
fi
"$PYVENV/bin/python" -c 'import flask, django' || die "target/pyvenv lacks Flask or Django"
export IMPERIUM_PYVENV=$PYVENV
echo "IMPERIUM_PYVENV=$IMPERIUM_PYVENV"
# The plugin is a cdylib: `cargo test` does not build its plain artifact, the tests load it
# from target/debug/ (next to the binary).
cargo build -p imperium-python
# ---- end python

# ---------------------------------------------------------------------------------------
banner "build (cargo test --workspace --no-run)"
cargo test --workspace --no-run

banner "test (cargo test --workspace --no-fail-fast)"
LOG=$ROOT/target/test-output.log
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG" || status=$?
# cargo's last closing line is a doc-test run that often has no tests: end with one plain
# line that adds up every runner's counts.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "\nSummary: %d passed, %d failed\n", p, f }' "$LOG"
exit "$status"
