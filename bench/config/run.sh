#!/usr/bin/env bash
# Configuration parsing benchmark: `--show-config --ini big.ini` (10,000 lines) with
# imperium and with uWSGI, timed in the same run, plus a check that both print the same
# configuration block.
#
#   bench/config/run.sh              # builds target/release/imperium first
#   REPS=50 bench/config/run.sh      # more repetitions (default 20)
#
# Environment: IMPERIUM_UWSGI (uWSGI binary; default target/venv/bin/uwsgi, then
# /tmp/uwsgi-venv/bin/uwsgi), IMPERIUM_BIN (skip the build and use this binary),
# BENCH_DIR (where the inputs are generated; default /tmp/imperium-bench-config),
# REPS (default 20).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/config"
reps="${REPS:-20}"
dir="${BENCH_DIR:-/tmp/imperium-bench-config}"

uwsgi="${IMPERIUM_UWSGI:-$root/target/venv/bin/uwsgi}"
if [ ! -x "$uwsgi" ] && [ -z "${IMPERIUM_UWSGI:-}" ]; then
    uwsgi=/tmp/uwsgi-venv/bin/uwsgi
fi
[ -x "$uwsgi" ] || { echo "run.sh: no uWSGI binary at $uwsgi (set IMPERIUM_UWSGI)" >&2; exit 1; }
uwsgi="$(realpath "$uwsgi")"

if [ -n "${IMPERIUM_BIN:-}" ]; then
    imperium="$(realpath "$IMPERIUM_BIN")"
else
    (cd "$root" && cargo build --release -p imperium)
    imperium="$root/target/release/imperium"
fi

# The benchmark's sockets live here; it must not exist, so uWSGI's bind() fails and it
# exits right after printing its configuration instead of serving.
if [ -e /tmp/imperium-bench-nonexistent ]; then
    echo "run.sh: /tmp/imperium-bench-nonexistent exists; remove it (uWSGI would bind there)" >&2
    exit 1
fi

mkdir -p "$dir"
dir="$(realpath "$dir")"
python3 "$here/gen.py" "$dir"
echo "input: $dir/big.ini ($(wc -l < "$dir/big.ini") lines) + $dir/bench-include.ini"
echo "imperium: $imperium"
echo "uWSGI:    $uwsgi ($("$uwsgi" --version))"
echo "machine:  $(nproc) CPUs, $(uname -srm)"
echo

# Headline: time from spawn to the ';end of configuration' line, alternating runs.
python3 "$here/bench.py" "$imperium" "$uwsgi" "$dir" "$reps"

# Whole process, for context: imperium stops after the configuration (no vassal server
# yet), uWSGI after failing to bind the first socket (it also starts its logger,
# plugins and the Python interpreter before that). Both exit non-zero: -i.
if command -v hyperfine > /dev/null; then
    echo
    echo "whole process (hyperfine, exit status ignored):"
    cd "$dir"
    env -i HOME=/home/bench PATH=/usr/bin:/bin LANG=C hyperfine -N -i --warmup 3 --runs "$reps" --style basic \
        -n imperium "$imperium --show-config --ini big.ini" \
        -n uwsgi "$uwsgi --show-config --ini big.ini" --export-json "$dir/hyperfine.json"
    python3 - "$dir/hyperfine.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
mi, mu = r["imperium"]["median"], r["uwsgi"]["median"]
print(f"whole process medians: imperium {mi * 1000:.2f} ms, uWSGI {mu * 1000:.2f} ms, ratio (uWSGI / imperium) {mu / mi:.2f}")
PY
fi
